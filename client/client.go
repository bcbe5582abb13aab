// Package client is the Go SDK for Baton's sources and terminals. A source
// publishes with a message id on every update, so its retries (to the same
// or another node) never make a duplicate. A terminal subscribes with resume
// by sequence number across disconnects and node failures, and checks that
// what it receives has no gap and no duplicate.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-pub/baton"
)

// Options tune a Client.
type Options struct {
	HTTP *http.Client
	// Backoff is the first retry delay; it doubles up to MaxBackoff.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Token, if set, is sent as a bearer token.
	Token string
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
	o     Options
	next  atomic.Uint64

	mu   sync.Mutex
	down map[string]time.Time // node -> until when it is skipped
}

// New returns a client for the nodes' base URLs (http://host:port).
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
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 0}
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
	return &Client{nodes: nodes, o: o, down: make(map[string]time.Time)}, nil
}

// APIError is an error answered by a node (4xx or 5xx).
type APIError struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

// Temporary reports whether retrying may succeed (5xx, 429, 409).
func (e *APIError) Temporary() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests
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

func (c *Client) do(ctx context.Context, method, base, path string, body []byte, out any) error {
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
	if c.o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.o.Token)
	}
	resp, err := c.o.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var env struct {
			Error APIError `json:"error"`
		}
		_ = json.Unmarshal(b, &env)
		env.Error.Status = resp.StatusCode
		if env.Error.Message == "" {
			env.Error.Message = strings.TrimSpace(string(b))
		}
		return &env.Error
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
// ends; a 4xx answer is returned at once.
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
		var out struct {
			Items []baton.Receipt `json:"items"`
		}
		node := c.pick()
		err := c.do(ctx, http.MethodPost, node, path, body, &out)
		if err == nil {
			if len(out.Items) != len(us) {
				return nil, fmt.Errorf("publish: %d receipts for %d updates", len(out.Items), len(us))
			}
			return out.Items, nil
		}
		var ae *APIError
		if errors.As(err, &ae) && !ae.Temporary() {
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

// Status fetches GET /v1/status from one node (base URL) or, if node is
// empty, from the first node that answers.
func (c *Client) Status(ctx context.Context, node string) (baton.NodeStatus, error) {
	var st baton.NodeStatus
	bases := c.nodes
	if node != "" {
		bases = []string{strings.TrimRight(node, "/")}
	}
	var err error
	for _, b := range bases {
		if err = c.do(ctx, http.MethodGet, b, "/v1/status", nil, &st); err == nil {
			return st, nil
		}
	}
	return st, err
}

// Handovers fetches a topic's release records.
func (c *Client) Handovers(ctx context.Context, topic string) ([]Handover, error) {
	var out struct {
		Handovers []Handover `json:"handovers"`
	}
	var err error
	for _, b := range c.nodes {
		if err = c.do(ctx, http.MethodGet, b, "/v1/topics/"+url.PathEscape(topic)+"/handovers?limit=1000", nil, &out); err == nil {
			return out.Handovers, nil
		}
	}
	return nil, err
}

// Handover is a release record with its successor, as the API lists it.
type Handover struct {
	baton.ReleaseRecord
	HandoverMS *float64 `json:"handover_ms"`
}

// Event is one event of a terminal's stream.
type Event struct {
	// Type is "item" or "reset".
	Type string
	// Item is set for "item" events.
	Item Delivered
	// Earliest is set for "reset": the earliest seq still kept.
	Earliest uint64
	// Node is the base URL of the node that sent the event.
	Node string
}

// Delivered is a published item as a terminal receives it.
type Delivered struct {
	Seq       uint64          `json:"seq"`
	ID        string          `json:"id"`
	Value     json.RawMessage `json:"value"`
	MsgID     string          `json:"msg_id"`
	Hash      baton.Hash      `json:"hash"`
	Epoch     uint64          `json:"epoch"`
	Publisher string          `json:"publisher"`
}

// ErrGap is returned by Subscribe if a node sent an item that does not
// follow the last one without an explicit reset: a broken guarantee.
var ErrGap = errors.New("gap in the stream")

// Subscribe streams topic's published items with seq > after to fn, in
// order, resuming after every disconnect (on the next node) from the last
// seq fn saw, so fn sees each seq once. It returns when ctx ends (nil), when
// fn returns an error (that error), or on ErrGap.
func (c *Client) Subscribe(ctx context.Context, topic string, after uint64, fn func(Event) error) error {
	last := after
	for attempt := 0; ; {
		base := c.pick()
		progressed, err := c.stream(ctx, base, topic, &last, fn)
		if ctx.Err() != nil {
			return nil
		}
		var stop stopError
		if errors.As(err, &stop) {
			return stop.err
		}
		if progressed {
			attempt = 0
		}
		var ae *APIError
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

// stream reads one SSE connection.
func (c *Client) stream(ctx context.Context, base, topic string, last *uint64, fn func(Event) error) (bool, error) {
	// The stream is abandoned when nothing arrives for StreamIdle.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idle := time.AfterFunc(c.o.StreamIdle, cancel)
	defer idle.Stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/topics/"+url.PathEscape(topic)+"/events", nil)
	if err != nil {
		return false, stopError{err}
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Last-Event-ID", strconv.FormatUint(*last, 10))
	if c.o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.o.Token)
	}
	resp, err := c.o.HTTP.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		ae := &APIError{Status: resp.StatusCode, Message: strings.TrimSpace(string(b))}
		if !ae.Temporary() {
			return false, stopError{fmt.Errorf("subscribe %s: %w", topic, ae)}
		}
		return false, ae
	}
	progressed := false
	body := &idleReader{r: resp.Body, t: idle, d: c.o.StreamIdle}
	err = ReadSSE(body, func(f Frame) error {
		switch f.Event {
		case "item", "":
			var d Delivered
			if err := json.Unmarshal(f.Data, &d); err != nil {
				return stopError{fmt.Errorf("subscribe %s: bad item from %s: %w", topic, base, err)}
			}
			if d.Seq <= *last {
				return nil // already seen (at least once on the wire)
			}
			if d.Seq != *last+1 {
				return stopError{fmt.Errorf("subscribe %s: %w: got seq %d after %d from %s", topic, ErrGap, d.Seq, *last, base)}
			}
			if err := fn(Event{Type: "item", Item: d, Node: base}); err != nil {
				return stopError{err}
			}
			*last = d.Seq
			progressed = true
		case "reset":
			var r struct {
				Earliest uint64 `json:"earliest"`
			}
			if err := json.Unmarshal(f.Data, &r); err != nil {
				return stopError{fmt.Errorf("subscribe %s: bad reset: %w", topic, err)}
			}
			if err := fn(Event{Type: "reset", Earliest: r.Earliest, Node: base}); err != nil {
				return stopError{err}
			}
			if r.Earliest > 0 && r.Earliest-1 > *last {
				*last = r.Earliest - 1
			}
			progressed = true
		}
		return nil
	})
	return progressed, err
}

// Frame is one Server-Sent Events frame.
type Frame struct {
	ID    string
	Event string
	Data  []byte
}

// ReadSSE parses a Server-Sent Events stream, calling fn per frame. Lines
// are bounded at 16 MiB.
func ReadSSE(r io.Reader, fn func(Frame) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var f Frame
	var data bytes.Buffer
	hasData := false
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			if hasData {
				f.Data = bytes.Clone(data.Bytes())
				if err := fn(f); err != nil {
					return err
				}
			}
			f, hasData = Frame{}, false
			data.Reset()
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "id":
			f.ID = string(value)
		case "event":
			f.Event = string(value)
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.Write(value)
			hasData = true
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
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
