// Package limits bounds what one client may take of a node: requests per
// second and concurrent streams, per client key (a token's subject, or the
// remote address when there is no token). The number of keys tracked is
// bounded too, so a flood of new addresses cannot grow memory.
package limits

import (
	"container/list"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Config sets the limits. A zero Rate or Streams means no limit of that
// kind.
type Config struct {
	// Rate is the sustained requests per second of one client, and Burst
	// how many it may send at once (default: Rate, at least 1).
	Rate  float64
	Burst int
	// Streams bounds the event streams one client holds at once.
	Streams int
	// MaxClients bounds the clients tracked (default 10000); the one idle
	// longest is forgotten first (its rate bucket starts full again).
	MaxClients int
	// Now is the clock; time.Now by default.
	Now func() time.Time
}

// Limits tracks every client's rate bucket and streams. Safe for
// concurrent use.
type Limits struct {
	cfg Config

	mu      sync.Mutex
	clients map[string]*list.Element // of *client
	lru     list.List                // front: most recently seen
}

type client struct {
	key     string
	bucket  *rate.Limiter
	streams int
}

// New returns limits for cfg.
func New(cfg Config) *Limits {
	if cfg.Burst <= 0 {
		cfg.Burst = max(1, int(cfg.Rate))
	}
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = 10000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Limits{cfg: cfg, clients: make(map[string]*list.Element)}
}

// get returns key's client, tracking it if new. l.mu is held.
func (l *Limits) get(key string) *client {
	if e, ok := l.clients[key]; ok {
		l.lru.MoveToFront(e)
		return e.Value.(*client)
	}
	for l.lru.Len() >= l.cfg.MaxClients {
		// Forget the longest idle client that holds no stream: a client's
		// stream count must outlive its bucket.
		e := l.lru.Back()
		for e != nil && e.Value.(*client).streams > 0 {
			e = e.Prev()
		}
		if e == nil {
			break
		}
		delete(l.clients, e.Value.(*client).key)
		l.lru.Remove(e)
	}
	c := &client{key: key}
	if l.cfg.Rate > 0 {
		c.bucket = rate.NewLimiter(rate.Limit(l.cfg.Rate), l.cfg.Burst)
	}
	l.clients[key] = l.lru.PushFront(c)
	return c
}

// Allow takes one request of key from its bucket. When the bucket is
// empty it returns false and how long until a request would pass.
func (l *Limits) Allow(key string) (bool, time.Duration) {
	if l.cfg.Rate <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.get(key)
	now := l.cfg.Now()
	r := c.bucket.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// OpenStream counts a new stream of key, unless key already holds
// Streams. The caller calls the returned function once when the stream
// ends.
func (l *Limits) OpenStream(key string) (func(), bool) {
	if l.cfg.Streams <= 0 {
		return func() {}, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.get(key)
	if c.streams >= l.cfg.Streams {
		return nil, false
	}
	c.streams++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			c.streams--
			l.mu.Unlock()
		})
	}, true
}

// Clients is the number of clients tracked.
func (l *Limits) Clients() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}
