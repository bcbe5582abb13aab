package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/wire"
)

// Items are JSON updates whose value carries the time the item was meant to
// be sent (Unix ns), so that a terminal can measure its latency from it:
//
//	{"id":"q.7","value":{"t":1732560000000000000,"p":"xxxx"},"msg_id":"src-7"}
//
// The pad makes the value ItemSize bytes long.

// valueOverhead is the length of a value without its pad.
const valueOverhead = len(`{"t":1732560000000000000,"p":""}`)

func padFor(itemSize int) string {
	return string(bytes.Repeat([]byte{'x'}, max(0, itemSize-valueOverhead)))
}

// appendValue appends an item's value.
func appendValue(b []byte, t int64, pad string) []byte {
	b = append(b, `{"t":`...)
	b = strconv.AppendInt(b, t, 10)
	b = append(b, `,"p":"`...)
	b = append(b, pad...)
	return append(b, `"}`...)
}

// appendUpdate appends one update of a publish request.
func appendUpdate(b []byte, src string, n, t int64, pad string) []byte {
	b = append(b, `{"id":"q.`...)
	b = strconv.AppendInt(b, n%50, 10)
	b = append(b, `","value":`...)
	b = appendValue(b, t, pad)
	b = append(b, `,"msg_id":"`...)
	b = append(b, src...)
	b = append(b, '-')
	b = strconv.AppendInt(b, n, 10)
	return append(b, `"}`...)
}

// Batch is items to publish in one request: item i is update (Src,
// First+i), due at Due[i] (Unix ns), with the value padded by Pad. The load
// loops make batches and a Sender encodes them the way its system takes
// them: Baton's JSON array of updates, a NATS message per item, a Centrifugo
// batch of publish commands (bench/peers).
type Batch struct {
	Src   string
	First int64
	Due   []int64
	Pad   string
}

// Len is the number of items.
func (b Batch) Len() int { return len(b.Due) }

// AppendItem appends item i as the JSON a peer publishes: Baton's update
// without its msg_id (a peer carries that in its own dedup field), so that
// a terminal reads the due time from it as from Baton's frames (sentAt).
func (b Batch) AppendItem(dst []byte, i int) []byte {
	n := b.First + int64(i)
	dst = append(dst, `{"id":"q.`...)
	dst = strconv.AppendInt(dst, n%50, 10)
	dst = append(dst, `","value":`...)
	dst = appendValue(dst, b.Due[i], b.Pad)
	return append(dst, '}')
}

// AppendMsgID appends item i's idempotency key, the msg_id Baton gets.
func (b Batch) AppendMsgID(dst []byte, i int) []byte {
	dst = append(dst, b.Src...)
	dst = append(dst, '-')
	return strconv.AppendInt(dst, b.First+int64(i), 10)
}

// appendBody appends the batch as Baton's publish request body.
func (b Batch) appendBody(dst []byte) []byte {
	dst = append(dst, '[')
	for i, t := range b.Due {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendUpdate(dst, b.Src, b.First+int64(i), t, b.Pad)
	}
	return append(dst, ']')
}

// Sender publishes a batch durably and returns once it is acknowledged.
// One Sender is used by one goroutine at a time.
type Sender interface {
	Send(ctx context.Context, b Batch) error
}

// newTransport is an HTTP transport for many connections to few hosts on
// the loopback interface, trusting the run's CA when the nodes serve TLS.
func (e *env) newTransport(conns int) *http.Transport {
	return &http.Transport{
		TLSClientConfig:     e.tls,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
}

// poster publishes request bodies to one node's topic.
type poster struct {
	hc  *http.Client
	url string
	r   *router // nil: always to url
}

// newPoster posts to the node at base (http://host:port or https://...).
func newPoster(hc *http.Client, base, topic string) *poster {
	return &poster{hc: hc, url: base + "/v1/topics/" + url.PathEscape(topic) + "/items"}
}

// newPosters returns a poster per base for topic. Unless spread, they
// follow the holder hint as client.Client does: once an answer names the
// topic's lease holder (wire.HolderHeader, given where appends are
// forwarded to it: SQLite), every poster sends there until a request to
// it fails. spread: each poster keeps to its base, as plain HTTP sources
// behind a load balancer would.
func newPosters(hc *http.Client, bases []string, topic string, spread bool) []Sender {
	r := &router{}
	r.pref.Store(-1)
	out := make([]Sender, len(bases))
	for i, b := range bases {
		p := newPoster(hc, b, topic)
		out[i] = p
		if u, err := url.Parse(b); err == nil && !spread {
			r.hosts = append(r.hosts, u.Host)
			r.posters = append(r.posters, p)
			p.r = r
		}
	}
	return out
}

// router is the holder hint the posters of a topic share: pref is the
// index in posters (and hosts) of the node an answer named, -1 for none.
type router struct {
	hosts   []string
	posters []*poster
	pref    atomic.Int32
}

// Send posts the batch as one request (Sender).
func (p *poster) Send(ctx context.Context, b Batch) error {
	return p.post(ctx, b.appendBody(make([]byte, 0, b.Len()*(len(b.Pad)+120)+2)))
}

// post sends a JSON array of updates and waits for the acknowledgement:
// to the holder its router knows of, if any.
func (p *poster) post(ctx context.Context, body []byte) error {
	to, at := p, int32(-1)
	if p.r != nil {
		if at = p.r.pref.Load(); at >= 0 {
			to = p.r.posters[at]
		}
	}
	hint, err := to.send(ctx, body)
	if p.r != nil {
		switch {
		case err != nil && at >= 0:
			p.r.pref.CompareAndSwap(at, -1)
		case hint != "":
			p.r.pref.Store(int32(slices.Index(p.r.hosts, hint))) // -1 if none of ours
		}
	}
	return err
}

// send posts body to p's URL and returns the answer's holder hint.
func (p *poster) send(ctx context.Context, body []byte) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", fmt.Errorf("publish: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.Header.Get(wire.HolderHeader), err
}

// openLoop publishes at a fixed rate whatever the answers: item k is due at
// start + k/Rate, and it is sent as soon as the schedule says, not when the
// previous request returns. The loop wakes when the next item is due, but
// at most once per Linger: the items due by then are posted as one batch
// (at most Batch items per request) by a pool of senders. At a rate of one
// item per Linger or less every item goes out at its own due time; above
// it, items wait up to Linger for their batch. Each item's acknowledgement
// latency is recorded from its due time, so that a slow answer (or a late
// wake of the loop) is charged to every item it delayed (no coordinated
// omission).
type openLoop struct {
	Rate    float64
	Dur     time.Duration
	Batch   int
	Senders int
	Src     string
	Pad     string
	Posters []Sender
	// Linger is the least time between two wakes of the loop (default
	// defaultLinger): what bounds the request rate at high item rates.
	Linger time.Duration
	// Clock is the loop's clock (default the system's).
	Clock baton.Clock
	// MaxLag ends the run early, unsustained, when the items due but not
	// yet acknowledged exceed MaxLag's worth of the rate.
	MaxLag time.Duration
	// Acks, if set, records acknowledgement latency from the due time.
	Acks *shardedHist
}

type loopResult struct {
	Sent, Acked, Errors int64
	Elapsed             time.Duration
	Aborted             bool
	FirstErr            error
}

// defaultLinger is openLoop.Linger's default.
const defaultLinger = time.Millisecond

func (o *openLoop) run(ctx context.Context) loopResult {
	linger := o.Linger
	if linger <= 0 {
		linger = defaultLinger
	}
	clock := o.Clock
	if clock == nil {
		clock = baton.SystemClock{}
	}
	jobs := make(chan Batch, 8192)
	var acked, errs atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for i := range o.Senders {
		wg.Go(func() {
			p := o.Posters[i%len(o.Posters)]
			for j := range jobs {
				err := p.Send(ctx, j)
				now := clock.Now().UnixNano()
				if err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
						errOnce.Do(func() { firstErr = err })
					}
					continue
				}
				acked.Add(int64(j.Len()))
				if o.Acks != nil {
					for _, d := range j.Due {
						o.Acks.Record(i, time.Duration(now-d))
					}
				}
			}
		})
	}
	res := loopResult{}
	start := clock.Now()
	startNs := start.UnixNano()
	interval := float64(time.Second) / o.Rate
	dueAt := func(k int64) time.Duration { return time.Duration(float64(k) * interval) }
	var k int64
	total := int64(o.Rate * o.Dur.Seconds())
	maxBacklog := int64(o.Rate * o.MaxLag.Seconds())
	timer := clock.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	// wake is when the loop means to wake next, from start: when item k
	// is due, and at least linger after the last wake it meant (not the
	// one it got, so that late wakes do not push the schedule back).
	var wake time.Duration
loop:
	for k < total {
		if d := start.Add(wake).Sub(clock.Now()); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				break loop
			case <-timer.C():
			}
		}
		elapsed := clock.Now().Sub(start)
		// Items k to due-1 are due: their due times are not after now,
		// counted from the due times themselves, so that a wake at an
		// item's due time finds it due (elapsed × Rate would round down).
		due := k
		for due < total && dueAt(due) <= elapsed {
			due++
		}
		for k < due {
			n := min(int64(o.Batch), due-k)
			dues := make([]int64, n)
			for i := range n {
				dues[i] = startNs + int64(dueAt(k+i))
			}
			select {
			case jobs <- Batch{Src: o.Src, First: k, Due: dues, Pad: o.Pad}:
			default:
				res.Aborted = true
				break loop
			}
			k += n
		}
		if maxBacklog > 0 && k-acked.Load()-errs.Load() > maxBacklog {
			res.Aborted = true
			break
		}
		// Every item due is sent, so item k is due after now: a late wake
		// is followed by one at k's due time at the latest, not a burst.
		wake = max(dueAt(k), wake+linger)
	}
	close(jobs)
	if res.Aborted {
		// Drain what is queued without sending it: the run is over.
		for range jobs {
		}
	}
	wg.Wait()
	res.Sent, res.Acked, res.Errors, res.Elapsed, res.FirstErr = k, acked.Load(), errs.Load(), clock.Now().Sub(start), firstErr
	return res
}

// stream reads a topic's Server-Sent Events from one node: connected is
// called once the stream's first bytes arrive, fn for every event's data (the
// item's JSON, valid until fn returns). It returns when ctx ends (nil) or the stream
// fails.
//
// If last is not nil, the stream resumes after *last (Last-Event-ID) when
// it is not 0, and *last follows the id of every event read.
func stream(ctx context.Context, hc *http.Client, base, path string, bufSize int, last *uint64, connected func(), fn func(data []byte)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if last != nil && *last > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(*last, 10))
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("subscribe %s: %s", path, resp.Status)
	}
	body := io.Reader(resp.Body)
	if connected != nil {
		body = &firstRead{r: body, fn: connected}
	}
	er := wire.NewEventReader(body, bufSize)
	for {
		ev, err := er.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("stream %s: %w", path, err)
		}
		fn(ev.Data)
		if last != nil {
			if id, err := ev.Seq(); err == nil {
				*last = id
			}
		}
	}
}

// firstRead calls fn once, when the first bytes of r arrive.
type firstRead struct {
	r  io.Reader
	fn func()
}

func (f *firstRead) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 && f.fn != nil {
		f.fn()
		f.fn = nil
	}
	return n, err
}

// field parses the unsigned integer that follows key in data; -1 if absent.
func field(data []byte, key string) int64 {
	i := bytes.Index(data, []byte(key))
	if i < 0 {
		return -1
	}
	var n int64
	j := i + len(key)
	if j >= len(data) || data[j] < '0' || data[j] > '9' {
		return -1
	}
	for ; j < len(data) && data[j] >= '0' && data[j] <= '9'; j++ {
		n = n*10 + int64(data[j]-'0')
	}
	return n
}

// sentAt reads the due time an item's value carries.
func sentAt(data []byte) int64 { return field(data, `"value":{"t":`) }
