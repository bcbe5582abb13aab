// Package forward sends a node's appends to the node that holds their
// topic's lease, on one machine (docs/design.md, "Appends forwarded to the
// lease holder"). On SQLite every node shares one file and its one write
// lock: an item appended by one node and published by another costs two
// transactions from two processes, while an item appended by the lease
// holder's own process is published in the append's own transaction
// (baton.AppendPublisher). A Forwarder makes the second case the common one.
//
// A forward is an optimisation, never a dependency: where the holder is not
// known, not live, or not on this machine, and where a forward fails, the
// node appends itself. Every update carries a msg id by the time it is
// appended (the server makes one where the client gave none: baton.
// NormalizeCompact), and an append is idempotent by msg id, so a forward
// whose outcome is unknown (sent, then no answer) is appended here too, and
// the store answers the second append as a duplicate of the first if the
// first was made: nothing is appended twice, nothing is lost.
package forward

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/wire"
)

// Path is the receiving node's route for forwarded appends: "/v1/internal/
// topics/{topic}/items". It is public to clients (no token) and refuses any
// request not signed with the nodes' key (Header).
const Path = "/v1/internal/topics/{topic}/items"

// DefaultTimeout bounds a forward: the deadline it is signed with. Past it
// the receiver refuses to append, and the forwarder stops waiting a little
// later (margin) and appends here (Config.Timeout). A forward takes a
// millisecond or two; a client's own timeout may be a few hundred (the
// bench's sources wait 300 ms): a hung holder must cost less than that, or
// the clients of the other nodes could append nothing until its lease
// lapsed.
const DefaultTimeout = 200 * time.Millisecond

// margin is how long past the deadline the forwarder waits for the
// receiver's answer (a refusal, or an append it began in time).
const margin = 50 * time.Millisecond

// DefaultRest is how long forwards to a node rest after one that got no
// answer (Config.Rest).
const DefaultRest = 2 * time.Second

// maxResponse bounds a receiver's answer (receipts of one batch).
const maxResponse = 4 << 20

// Outcomes of one Append, as Config.Observe hears them.
const (
	Forwarded = "forwarded" // appended by the lease holder's node
	Local     = "local"     // no forward was tried: appended here
	Fallback  = "fallback"  // a forward failed: appended here
)

// Config of a Forwarder.
type Config struct {
	// Node is this node's id, signed into every forward.
	Node string
	// Key is the key the nodes share (KeySize bytes).
	Key []byte
	// Local appends on this node: where no forward goes, and after one
	// that failed safely.
	Local func(ctx context.Context, topic string, ups []baton.Update) ([]baton.Receipt, error)
	// Route reports the address (HOST:PORT) of the node that holds
	// topic's lease, if another node that is live holds it.
	Route func(topic string) (addr string, ok bool)
	// TLS forwards over TLS (the nodes serve it). The peer's certificate
	// is not verified: forwards go to loopback addresses only, and carry a
	// signature, not a secret.
	TLS bool
	// Timeout bounds a forward (default DefaultTimeout).
	Timeout time.Duration
	// Rest is how long forwards to a node rest after one that got no
	// answer (default DefaultRest).
	Rest time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Observe hears the outcome of every Append (optional).
	Observe func(outcome string)
	Logger  *slog.Logger
}

// Forwarder appends through the lease holder's node where it can.
type Forwarder struct {
	cfg    Config
	client *http.Client
	scheme string

	mu   sync.Mutex
	down map[string]time.Time // resting addresses, until when
}

// New checks cfg and returns a Forwarder.
func New(cfg Config) (*Forwarder, error) {
	switch {
	case len(cfg.Key) < KeySize:
		return nil, fmt.Errorf("new forwarder: key of %d bytes, want %d", len(cfg.Key), KeySize)
	case cfg.Node == "":
		return nil, errors.New("new forwarder: no node id")
	case cfg.Local == nil || cfg.Route == nil:
		return nil, errors.New("new forwarder: Local and Route are required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Rest <= 0 {
		cfg.Rest = DefaultRest
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Observe == nil {
		cfg.Observe = func(string) {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: cfg.Timeout}).DialContext,
		MaxIdleConnsPerHost: 64,
		// Below the receiver's idle timeout (http.DefaultIdleTimeout), so
		// that a forward is not written to a connection it is closing.
		IdleConnTimeout: 30 * time.Second,
		// The peers are on this machine: no proxy.
		Proxy: nil,
	}
	scheme := "http"
	if cfg.TLS {
		scheme = "https"
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec // loopback only, and signed (Config.TLS)
	}
	return &Forwarder{cfg: cfg, client: &http.Client{Transport: tr}, scheme: scheme, down: make(map[string]time.Time)}, nil
}

// Close ends the idle connections.
func (f *Forwarder) Close() error {
	f.client.CloseIdleConnections()
	return nil
}

// Append appends ups to topic through the node that holds its lease, or
// here (see the package comment). It has Store.Append's contract.
func (f *Forwarder) Append(ctx context.Context, topic string, ups []baton.Update) ([]baton.Receipt, error) {
	addr, ok := f.cfg.Route(topic)
	if !ok || !Loopback(addr) || !allMsgIDs(ups) || f.resting(addr) {
		f.cfg.Observe(Local)
		return f.cfg.Local(ctx, topic, ups)
	}
	rs, err := f.send(ctx, addr, topic, ups)
	switch {
	case err == nil:
		f.cfg.Observe(Forwarded)
		return rs, nil
	case ctx.Err() != nil:
		// The caller gave up: so does the append, as a local one would
		// (not counted: it was made nowhere, or by the holder). If it gave
		// up waiting for the holder, forwards to it rest, as after a
		// timeout: a caller with less patience than Timeout would
		// otherwise never get an append made while the holder hangs.
		f.rest(addr)
		return nil, ctx.Err()
	}
	if !errors.Is(err, errRefused) {
		// Not an answer: the holder's node may hang or be gone. Forwards
		// to it rest, so that one slow node costs a few requests its
		// timeout, not every request until its lease lapses.
		f.rest(addr)
	}
	f.cfg.Observe(Fallback)
	f.cfg.Logger.Debug("forward: appending here", "topic", topic, "to", addr, "err", err)
	return f.cfg.Local(ctx, topic, ups)
}

// Holder reports where this node forwards topic's appends now: the
// holder's address, unless forwards to it rest after one that got no
// answer (a hung or vanished holder). A publish's answer names it to the
// client (wire.HolderHeader), which then sends the topic's appends there
// itself: a holder that this node would not forward to is not named, so
// that clients leave a hung holder as the forwards do.
func (f *Forwarder) Holder(topic string) (string, bool) {
	addr, ok := f.cfg.Route(topic)
	if !ok || !Loopback(addr) || f.resting(addr) {
		return "", false
	}
	return addr, true
}

// errRefused marks a forward that the receiver refused with a 4xx: it
// answered, and changed nothing.
var errRefused = errors.New("refused")

// resting reports whether forwards to addr rest after a failure.
func (f *Forwarder) resting(addr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	until, ok := f.down[addr]
	if ok && !f.cfg.Now().Before(until) {
		delete(f.down, addr)
		return false
	}
	return ok
}

// rest stops forwards to addr for Rest.
func (f *Forwarder) rest(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down[addr] = f.cfg.Now().Add(f.cfg.Rest)
}

// send forwards one append and returns the receiver's receipts.
func (f *Forwarder) send(ctx context.Context, addr, topic string, ups []baton.Update) ([]baton.Receipt, error) {
	body, err := json.Marshal(ups)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	deadline := f.cfg.Now().Add(f.cfg.Timeout)
	// The receiver refuses the append after deadline; wait a little past it
	// for its answer.
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout+margin)
	defer cancel()
	u := f.scheme + "://" + addr + strings.Replace(Path, "{topic}", url.PathEscape(topic), 1)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(Header, Sign(f.cfg.Key, f.cfg.Node, topic, body, deadline))
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("read the answer: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusCreated:
		var pr wire.PublishResponse
		if err := json.Unmarshal(b, &pr); err != nil {
			return nil, fmt.Errorf("decode the answer: %w", err)
		}
		if len(pr.Items) != len(ups) {
			return nil, fmt.Errorf("answer with %d receipts for %d updates", len(pr.Items), len(ups))
		}
		return pr.Items, nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return nil, fmt.Errorf("%w: %s: %s", errRefused, resp.Status, clip(b))
	default:
		return nil, fmt.Errorf("%s: %s", resp.Status, clip(b))
	}
}

// allMsgIDs reports whether every update carries a msg id, as Append's
// contract has it: appending them again appends nothing twice. Updates
// without one are appended here.
func allMsgIDs(ups []baton.Update) bool {
	for _, u := range ups {
		if u.MsgID == "" {
			return false
		}
	}
	return true
}

// Loopback reports whether addr (HOST:PORT) is on this machine: a loopback
// IP or "localhost". Only such addresses are forwarded to.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// clip shortens a receiver's error body for an error message.
func clip(b []byte) string {
	if len(b) > 256 {
		b = b[:256]
	}
	return string(bytes.TrimSpace(b))
}
