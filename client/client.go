// Package client is the Go SDK for Baton's sources and terminals. A source
// publishes with a message id on every update, so its retries (to the same
// or another node) never make a duplicate. A terminal subscribes with resume
// by sequence number across disconnects and node failures, and checks that
// what it receives has no gap and no duplicate.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/wire"
)

// Options tune a Client.
type Options struct {
	HTTP *http.Client
	// TLS, if set, is the TLS configuration for https:// nodes (see
	// LoadTLS): the CAs to trust, a client certificate. It is applied to
	// HTTP's transport, which must then be an *http.Transport or nil.
	TLS *tls.Config
	// Backoff is the first retry delay; it doubles up to MaxBackoff.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Token, if set, is sent as a bearer token (Authorization: Bearer) on
	// every request and stream.
	Token string
	// TokenSource, if set, is asked for a fresh token when a node refuses
	// the one in use (401) or ends a stream with an auth event (the token
	// expired, docs/api.md): the request is sent again, the stream resumes
	// after the last item received. It is also asked for the first token
	// when Token is "". Requests and streams of one client may call it at
	// once.
	TokenSource func(ctx context.Context) (string, error)
	// RequestTimeout bounds each attempt of a request (not a stream):
	// a node that accepts connections but never answers (paused, hung) is
	// given up on. Default 5s.
	RequestTimeout time.Duration
	// StreamIdle is how long a stream may go without a byte (items or
	// the server's heartbeats) before the client gives the node up and
	// resumes on another. Default 15s (three server heartbeats).
	StreamIdle time.Duration
	// OnRetry, if set, is told of every failed attempt that will be retried.
	OnRetry func(node string, err error)
}

// Client talks to one or more Baton nodes.
type Client struct {
	nodes []string
	hosts []string // host:port of each of nodes, as a Baton-Holder hint names it
	o     Options
	next  atomic.Uint64

	mu   sync.Mutex
	down map[string]time.Time // node -> until when it is skipped
	// holders: topic -> the node (one of nodes) that a publish's answer
	// named as the topic's lease holder (wire.HolderHeader); at most
	// maxHolders topics.
	holders map[string]string

	tokMu sync.Mutex
	token string // the bearer token in use
}

// New returns a client for the nodes' base URLs (http://host:port or
// https://host:port; host:port alone means http).
func New(nodes []string, o Options) (*Client, error) {
	if len(nodes) == 0 {
		return nil, errors.New("new client: no node addresses")
	}
	for i, n := range nodes {
		if !strings.Contains(n, "://") {
			n = "http://" + n
		}
		u, err := url.Parse(n)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("new client: bad node address %q", nodes[i])
		}
		nodes[i] = strings.TrimRight(n, "/")
	}
	var err error
	if o.HTTP, err = WithTLS(o.HTTP, o.TLS); err != nil {
		return nil, err
	}
	if o.Backoff <= 0 {
		o.Backoff = 20 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Second
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 5 * time.Second
	}
	if o.StreamIdle <= 0 {
		o.StreamIdle = 15 * time.Second
	}
	hosts := make([]string, len(nodes))
	for i, n := range nodes {
		u, _ := url.Parse(n) // parsed above
		hosts[i] = u.Host
	}
	return &Client{nodes: nodes, hosts: hosts, o: o, down: make(map[string]time.Time), holders: make(map[string]string), token: o.Token}, nil
}

// maxHolders bounds the topics whose holder a client remembers: past it,
// it forgets them all and learns again from the next answers.
const maxHolders = 4096

// pickFor returns the node to publish topic's updates to: the holder an
// answer named, unless it failed recently, else the next node in turn.
func (c *Client) pickFor(topic string) string {
	c.mu.Lock()
	n, ok := c.holders[topic]
	if ok {
		if until, down := c.down[n]; down && time.Now().Before(until) {
			ok = false
		}
	}
	c.mu.Unlock()
	if ok {
		return n
	}
	return c.pick()
}

// learnHolder records the holder an answer of node named for topic (hint:
// the wire.HolderHeader's host:port, "" for none): the next publishes of
// topic go to the client's node at that address. A hint that names no
// node of the client's is ignored; so is none from the remembered holder
// itself (it holds the lease: it names no other).
func (c *Client) learnHolder(topic, node, hint string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if hint == "" {
		if c.holders[topic] != node {
			delete(c.holders, topic)
		}
		return
	}
	i := slices.Index(c.hosts, hint)
	if i < 0 {
		delete(c.holders, topic)
		return
	}
	if len(c.holders) >= maxHolders {
		clear(c.holders)
	}
	c.holders[topic] = c.nodes[i]
}

// forgetHolder drops topic's remembered holder (it did not answer).
func (c *Client) forgetHolder(topic string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.holders, topic)
}

// pick returns the next node in turn, skipping nodes that failed recently
// unless all of them did.
func (c *Client) pick() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	for range c.nodes {
		n := c.nodes[c.next.Add(1)%uint64(len(c.nodes))]
		if until, ok := c.down[n]; !ok || now.After(until) {
			delete(c.down, n)
			return n
		}
	}
	return c.nodes[c.next.Add(1)%uint64(len(c.nodes))]
}

// markDown skips node for a while after a connection failure.
func (c *Client) markDown(node string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down[node] = time.Now().Add(c.o.MaxBackoff)
}

// pause waits before the next attempt: not at all while other nodes remain
// to be tried in this round, with growing backoff after a whole round failed.
func (c *Client) pause(ctx context.Context, attempt int) error {
	if (attempt+1)%len(c.nodes) != 0 {
		return ctx.Err()
	}
	return c.sleep(ctx, attempt/len(c.nodes))
}

func (c *Client) sleep(ctx context.Context, attempt int) error {
	d := c.o.Backoff << min(attempt, 10)
	d = min(d, c.o.MaxBackoff)
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// do sends one request and, if the node refuses the token (401) and a
// token source can give a fresh one, sends it once more with that.
func (c *Client) do(ctx context.Context, method, base, path string, body []byte, out any) error {
	return c.doHeader(ctx, method, base, path, body, out, nil)
}

// doHeader is do that also keeps the answer's header in *hdr, if hdr is
// not nil.
func (c *Client) doHeader(ctx context.Context, method, base, path string, body []byte, out any, hdr *http.Header) error {
	err := c.doOnce(ctx, method, base, path, body, out, hdr)
	if !refused(err) || c.o.TokenSource == nil {
		return err
	}
	if _, rerr := c.refreshToken(ctx); rerr != nil {
		return fmt.Errorf("%w (%v)", err, rerr)
	}
	return c.doOnce(ctx, method, base, path, body, out, hdr)
}

func (c *Client) doOnce(ctx context.Context, method, base, path string, body []byte, out any, hdr *http.Header) error {
	ctx, cancel := context.WithTimeout(ctx, c.o.RequestTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := c.authorize(req); err != nil {
		return err
	}
	resp, err := c.o.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if hdr != nil {
		*hdr = resp.Header
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var env wire.ErrorResponse
		_ = json.Unmarshal(b, &env)
		if env.Error == nil {
			env.Error = &wire.Error{}
		}
		env.Error.Status = resp.StatusCode
		if env.Error.Message == "" {
			env.Error.Message = strings.TrimSpace(string(b))
		}
		return env.Error
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("decode %s %s: %w", method, path, err)
		}
	}
	return nil
}

// Publish appends updates to topic as one atomic batch and returns a
// receipt for each once they are durable. Updates without a MsgID get one
// here, before the first attempt, so that retries are idempotent. It retries
// on network errors and 5xx answers, rotating over the nodes, until ctx
// ends; a 4xx answer or a certificate refused either way is returned at
// once.
func (c *Client) Publish(ctx context.Context, topic string, updates []baton.Update) ([]baton.Receipt, error) {
	if len(updates) == 0 {
		return nil, errors.New("publish: no updates")
	}
	us := make([]baton.Update, len(updates))
	copy(us, updates)
	for i := range us {
		if us[i].MsgID == "" {
			us[i].MsgID = baton.NewMsgID()
		}
	}
	body, err := json.Marshal(us)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	path := "/v1/topics/" + url.PathEscape(topic) + "/items"
	for attempt := 0; ; attempt++ {
		var out wire.PublishResponse
		node := c.pickFor(topic)
		var hdr http.Header
		err := c.doHeader(ctx, http.MethodPost, node, path, body, &out, &hdr)
		if err == nil {
			if len(out.Items) != len(us) {
				return nil, fmt.Errorf("publish: %d receipts for %d updates", len(out.Items), len(us))
			}
			c.learnHolder(topic, node, hdr.Get(wire.HolderHeader))
			return out.Items, nil
		}
		c.forgetHolder(topic)
		var ae *wire.Error
		if errors.As(err, &ae) && !ae.Temporary() || untrusted(err) {
			return nil, fmt.Errorf("publish: %w", err)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("publish: %w (last error: %v)", ctx.Err(), err)
		}
		if c.o.OnRetry != nil {
			c.o.OnRetry(node, err)
		}
		if !errors.As(err, &ae) {
			c.markDown(node) // no answer at all: try the others first
		}
		if err := c.pause(ctx, attempt); err != nil {
			return nil, fmt.Errorf("publish: %w", err)
		}
	}
}

// Nodes returns the base URLs of the client's nodes.
func (c *Client) Nodes() []string { return append([]string(nil), c.nodes...) }

// Status fetches GET /v1/status from one node (base URL) or, if node is
// empty, from the first node that answers: the node's summary and its
// topic counts, without topics (Topics reads them a page at a time).
func (c *Client) Status(ctx context.Context, node string) (wire.Status, error) {
	var st wire.Status
	err := c.first(ctx, node, func(base string) error {
		return c.do(ctx, http.MethodGet, base, "/v1/status", nil, &st)
	})
	return st, err
}

// TopicsQuery asks GET /v1/topics for one page of topics.
type TopicsQuery struct {
	// After is the topic the page starts after ("": the first page); the
	// answer's Next is the After of the next page.
	After string
	// Limit bounds the page (0: the server's default, wire.DefaultTopicsLimit).
	Limit int
	// Status asks for each topic's status too (the admin right).
	Status bool
}

// Topics fetches one page of GET /v1/topics from one node (base URL) or,
// if node is empty, from the first node that answers.
func (c *Client) Topics(ctx context.Context, node string, q TopicsQuery) (wire.TopicsResponse, error) {
	v := url.Values{}
	if q.After != "" {
		v.Set("after", q.After)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Status {
		v.Set("status", "true")
	}
	path := "/v1/topics"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var resp wire.TopicsResponse
	err := c.first(ctx, node, func(base string) error {
		return c.do(ctx, http.MethodGet, base, path, nil, &resp)
	})
	return resp, err
}

// first calls get with node's base URL or, if node is empty, with each of
// the client's nodes in turn until one answers.
func (c *Client) first(ctx context.Context, node string, get func(base string) error) error {
	bases := c.nodes
	if node != "" {
		bases = []string{strings.TrimRight(node, "/")}
	}
	var err error
	for _, b := range bases {
		if err = get(b); err == nil || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// Drain drains one node (base URL): it hands every topic it publishes over
// to other nodes and takes none back (on), or races again (off). See
// POST /v1/drain in docs/api.md.
func (c *Client) Drain(ctx context.Context, node string, on bool) (wire.Drain, error) {
	method, body := http.MethodPost, []byte("{}")
	if !on {
		// A DELETE takes no body: the server refuses one (docs/api.md).
		method, body = http.MethodDelete, nil
	}
	var d wire.Drain
	err := c.do(ctx, method, strings.TrimRight(node, "/"), "/v1/drain", body, &d)
	return d, err
}

// Holder asks the client's nodes in turn, until one answers, who holds
// topic's lease and under which epoch; "" if no lease is live. Every node
// reads the lock from the shared store, so the first answer is the answer.
func (c *Client) Holder(ctx context.Context, topic string) (string, uint64, error) {
	var lock baton.LockState
	err := c.first(ctx, "", func(base string) error {
		return c.do(ctx, http.MethodGet, base, "/v1/topics/"+url.PathEscape(topic)+"/lock", nil, &lock)
	})
	if err != nil || !lock.Held {
		return "", 0, err
	}
	return lock.Lease.Holder, lock.Lease.Epoch, nil
}

// Handovers fetches a topic's release records.
func (c *Client) Handovers(ctx context.Context, topic string) ([]wire.Handover, error) {
	var out wire.HandoversResponse
	var err error
	for _, b := range c.nodes {
		if err = c.do(ctx, http.MethodGet, b, "/v1/topics/"+url.PathEscape(topic)+"/handovers?limit=1000", nil, &out); err == nil {
			return out.Handovers, nil
		}
	}
	return nil, err
}

// Event is one event of a terminal's stream.
type Event struct {
	// Type is wire.EventItem, wire.EventReset or, on a Subscriber of many
	// topics, wire.EventDeleted (the topic was deleted; the others go on);
	// with a snapshot (WithSnapshot, SubscribeOptions.Snapshot) also
	// EventSnapshotStart, wire.EventSnapshot and wire.EventSnapshotEnd.
	Type string
	// Topic is the event's topic.
	Topic string
	// Item is set for "item" events.
	Item wire.Item
	// Earliest is set for "reset": the earliest seq still kept.
	Earliest uint64
	// Seq is set for "snapshot_end": the snapshot is the topic's state as
	// of Seq, and the items that follow have seqs from Seq+1.
	Seq uint64
	// Node is the base URL of the node that sent the event.
	Node string
}

// ErrGap is returned by Subscribe if a node sent an item that does not
// follow the last one without an explicit reset: a broken guarantee.
var ErrGap = errors.New("gap in the stream")

// Subscribe streams topic's published items with seq > after to fn, in
// order, resuming after every disconnect (on the next node) from the last
// seq fn saw, so fn sees each seq once. A stream that ends with an auth
// event (its token expired) resumes the same way with a token from
// Options.TokenSource. It returns when ctx ends (nil), when fn returns an
// error (that error), on ErrGap, on ErrTopicDeleted, on a 4xx (a 401 that a fresh token does
// not mend) or on a certificate refused either way. It is a Subscriber of
// one topic over SSE.
//
// With WithSnapshot, the stream starts with the topic's snapshot (after is
// ignored): see WithSnapshot.
func (c *Client) Subscribe(ctx context.Context, topic string, after uint64, fn func(Event) error, opts ...SubscribeOption) error {
	if strings.Contains(topic, "*") {
		return fmt.Errorf("subscribe %s: a topic name, not a pattern (see Subscriber)", topic)
	}
	o := SubscribeOptions{Topics: []string{topic}, Positions: map[string]uint64{topic: after}}
	if subscribeOptionsOf(opts).snapshot {
		o.Snapshot, o.Positions = true, nil // from the snapshot: after is ignored
	}
	s, err := c.Subscriber(o)
	if err != nil {
		return err
	}
	return s.Run(ctx, fn)
}

// resume runs conn on one node after another until it ends for good: the
// retry loop of every subscriber. conn reports whether it delivered
// anything (the backoff then starts again) and why it ended.
func (c *Client) resume(ctx context.Context, what string, conn func(ctx context.Context, base string) (bool, error)) error {
	refusedFresh := false // the token was refused at a stream's start after a refresh
	for attempt := 0; ; {
		base := c.pick()
		progressed, err := conn(ctx, base)
		if ctx.Err() != nil {
			return nil
		}
		var stop stopError
		if errors.As(err, &stop) {
			return stop.err
		}
		if untrusted(err) {
			return fmt.Errorf("subscribe %s: %w", what, err)
		}
		var ended authEnded
		if errors.As(err, &ended) {
			// A new token, then resume at once after the last item:
			// unless a fresh token was refused too (it cannot help).
			if ended.atOpen && refusedFresh {
				return ended.err
			}
			if _, err := c.refreshToken(ctx); err != nil {
				return fmt.Errorf("subscribe %s: %w", what, err)
			}
			refusedFresh = ended.atOpen
			continue
		}
		refusedFresh = false
		if progressed {
			attempt = 0
		}
		var ae *wire.Error
		if !progressed && !errors.As(err, &ae) {
			c.markDown(base)
		}
		if err := c.pause(ctx, attempt); err != nil {
			return nil
		}
		attempt++
	}
}

type stopError struct{ err error }

func (e stopError) Error() string { return e.err.Error() }

// stream reads one SSE connection of topic. With *snap (the snapshot is
// still to come) it asks for the snapshot first, and hands fn
// EventSnapshotStart before it; snapshot_end clears *snap.
func (c *Client) stream(ctx context.Context, base, topic string, last *uint64, snap *bool, fn func(Event) error) (bool, error) {
	u := base + "/v1/topics/" + url.PathEscape(topic) + "/events"
	lastID := strconv.FormatUint(*last, 10)
	if *snap {
		// A Last-Event-ID would resume instead of sending the snapshot.
		u, lastID = u+"?snapshot=1", ""
	}
	started := false // this connection's snapshot began
	return c.readStream(ctx, u, lastID, topic, func(ev wire.Event) (bool, error) {
		switch ev.Type {
		case wire.EventSnapshot, wire.EventSnapshotEnd:
			if *snap && !started {
				started = true
				if err := fn(Event{Type: EventSnapshotStart, Node: base}); err != nil {
					return false, stopError{err}
				}
			}
			if err := snapshotEvent(ev, base, last, snap, fn); err != nil {
				return false, err
			}
			// A snapshot is progress once whole: a node that breaks
			// every snapshot off is backed off from.
			return !*snap, nil
		case wire.EventItem:
			d, err := ev.Item()
			if err != nil {
				return false, stopError{fmt.Errorf("subscribe %s: bad item from %s: %w", topic, base, err)}
			}
			if d.Seq <= *last {
				return false, nil // already seen (at least once on the wire)
			}
			if d.Seq != *last+1 {
				return false, stopError{fmt.Errorf("subscribe %s: %w: got seq %d after %d from %s", topic, ErrGap, d.Seq, *last, base)}
			}
			if err := fn(Event{Type: wire.EventItem, Item: d, Node: base}); err != nil {
				return false, stopError{err}
			}
			*last = d.Seq
			return true, nil
		case wire.EventReset:
			r, err := ev.Reset()
			if err != nil {
				return false, stopError{fmt.Errorf("subscribe %s: bad reset from %s: %w", topic, base, err)}
			}
			if err := fn(Event{Type: wire.EventReset, Earliest: r.Earliest, Node: base}); err != nil {
				return false, stopError{err}
			}
			if r.Earliest > 0 && r.Earliest-1 > *last {
				*last = r.Earliest - 1
			}
			return true, nil
		case wire.EventDeleted:
			return false, stopError{fmt.Errorf("subscribe %s: %w", topic, ErrTopicDeleted)}
		}
		return false, nil
	})
}

// readStream reads the event stream at u (openStream) and hands each
// event to handle, which reports whether it delivered anything, until the
// stream ends: for resume, whether anything was delivered and why it
// ended. An auth event (the token expired) ends it for handle.
func (c *Client) readStream(ctx context.Context, u, lastID, what string, handle func(wire.Event) (bool, error)) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, body, err := c.openStream(ctx, cancel, u, lastID, what)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	defer body.t.Stop()
	progressed := false
	er := wire.NewEventReader(body, 0)
	for {
		ev, err := er.Next()
		if err == io.EOF {
			// The server ended the stream: resume, from another node if
			// this one is shutting down.
			return progressed, io.ErrUnexpectedEOF
		}
		if err != nil {
			return progressed, err
		}
		if ev.Type == wire.EventAuth {
			a, _ := ev.Auth()
			return progressed, c.authEnd(what, &wire.Error{Status: http.StatusUnauthorized, Code: a.Code, Message: a.Message})
		}
		p, err := handle(ev)
		progressed = progressed || p
		if err != nil {
			return progressed, err
		}
	}
}

// openStream opens an event stream at u (with Last-Event-ID lastID, if
// set) and returns the response and its body, which cancel (the
// context's) ends when nothing arrives for StreamIdle. An answer other
// than 200 is the error, as resume wants it.
func (c *Client) openStream(ctx context.Context, cancel context.CancelFunc, u, lastID, what string) (*http.Response, *idleReader, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, stopError{err}
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	if err := c.authorize(req); err != nil {
		return nil, nil, stopError{err}
	}
	// The stream is abandoned when nothing arrives for StreamIdle.
	idle := time.AfterFunc(c.o.StreamIdle, cancel)
	resp, err := c.o.HTTP.Do(req)
	if err != nil {
		idle.Stop()
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		idle.Stop()
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, nil, c.refusal(what, resp.StatusCode, b)
	}
	return resp, &idleReader{r: resp.Body, t: idle, d: c.o.StreamIdle}, nil
}

// refusal is the error of a stream's opening answered with status and
// body: for resume, an auth end (401 with a token source), a stop (a
// lasting refusal) or a temporary error.
func (c *Client) refusal(what string, status int, body []byte) error {
	ae := &wire.Error{Status: status}
	var env wire.ErrorResponse
	if json.Unmarshal(body, &env) == nil && env.Error != nil {
		ae = env.Error
		ae.Status = status
	} else {
		ae.Message = strings.TrimSpace(string(body))
	}
	if ae.Status == http.StatusUnauthorized && c.o.TokenSource != nil {
		return authEnded{err: fmt.Errorf("subscribe %s: %w", what, ae), atOpen: true}
	}
	if !ae.Temporary() {
		return stopError{fmt.Errorf("subscribe %s: %w", what, ae)}
	}
	return ae
}

// authEnd is the end of a stream by an auth event: resume with a new
// token if a token source can give one.
func (c *Client) authEnd(what string, ae *wire.Error) error {
	if c.o.TokenSource == nil {
		return stopError{fmt.Errorf("subscribe %s: %w", what, ae)}
	}
	return authEnded{err: fmt.Errorf("subscribe %s: %w", what, ae)}
}

// idleReader re-arms an idle timer on every read that returns data.
type idleReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.t.Reset(r.d)
	}
	return n, err
}
