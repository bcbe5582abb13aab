// Package http is Baton's HTTP API: ingest (POST items), terminal delivery
// (Server-Sent Events), polling and inspection endpoints, and health checks.
// docs/api.md describes the API; this package is its one implementation.
// The bodies it reads and writes are package wire's.
package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	nethttp "net/http"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/auth"
	"github.com/baton-pub/baton/forward"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/internal/limits"
	"github.com/baton-pub/baton/wire"
)

// Defaults of Config.
const (
	DefaultMaxBody         = 1 << 20
	DefaultMaxBatch        = 10000
	DefaultHeartbeat       = 5 * time.Second
	DefaultWriteTimeout    = 10 * time.Second
	DefaultReadTimeout     = 30 * time.Second
	DefaultReadyTimeout    = time.Second
	DefaultShutdownTimeout = 5 * time.Second
	// DefaultIdleTimeout and DefaultReadHeaderTimeout: see
	// Config.IdleTimeout.
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultMaxStreams        = 100000
)

// Config configures a Server. Store and Hub are required; zero values of the
// others take the defaults.
type Config struct {
	Store baton.Store
	Hub   *hub.Hub
	// Append appends a client's updates (POST .../items and WebSocket
	// publish frames): a forward.Forwarder's, which sends them to the
	// topic's lease holder. Default Store.Append.
	Append func(ctx context.Context, topic string, ups []baton.Update) ([]baton.Receipt, error)
	// Holder reports where another node that holds topic's lease serves
	// (host:port), when appends of the topic are best sent there (SQLite:
	// they are forwarded there; Redis: the holder publishes them with
	// their append): a publish's answer names it in wire.HolderHeader.
	// Optional.
	Holder func(topic string) (addr string, ok bool)
	// ForwardKey is the nodes' shared key: with it, POST forward.Path
	// appends what another node forwarded and signed with it
	// (forwarded.go); without it that route answers 404.
	ForwardKey []byte
	// Status reports the node for GET /v1/status, with the statuses of its
	// first topics (at most the given number) in name order; TopicStatuses
	// reads the statuses of the named topics, for GET
	// /v1/topics?status=true (node.Node's methods). If nil, those routes
	// answer 503.
	Status        func(ctx context.Context, topics int) (wire.Status, error)
	TopicStatuses func(ctx context.Context, topics []string) ([]baton.TopicStatus, error)
	// MaxBody bounds a request body, in bytes.
	MaxBody int64
	// MaxBatch bounds the updates in one POST.
	MaxBatch int
	// Heartbeat is the interval of SSE comment lines on every stream.
	Heartbeat time.Duration
	// WriteTimeout bounds each write to an event stream: a client that
	// does not read for that long is dropped.
	WriteTimeout time.Duration
	// ReadTimeout bounds reading a request body.
	ReadTimeout time.Duration
	// ReadyTimeout bounds the store ping of GET /readyz.
	ReadyTimeout time.Duration
	// Instance, if set, is answered by GET /healthz in its Baton-Instance
	// header: a random name of this process, which the other nodes' peer
	// watch compares to tell a restart from the same process (node/peers.go).
	Instance string
	// ShutdownTimeout bounds Close's wait for requests in flight.
	ShutdownTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long, and
	// ReadHeaderTimeout one whose request headers take longer (defaults
	// 2m and 10s).
	IdleTimeout, ReadHeaderTimeout time.Duration
	Logger                         *slog.Logger
	// Ledger serves the ledger routes (checkpoint, proofs); if nil they
	// answer 404.
	Ledger Ledger
	// AdmitTopic, if set, is asked before every append whether it may go
	// to topic; its error (a 403 for a topic over the node's cap, see
	// node.Node.AdmitTopic) is the answer, and nothing is appended.
	AdmitTopic func(ctx context.Context, topic string) error
	// Drain, if set, drains the node (on) or lets it race again (off) for
	// POST and DELETE /v1/drain, and reports the node's state; if nil the
	// route answers 503.
	Drain func(on bool) wire.Drain
	// TopicDeleted, if set, is told of a topic this server deleted (DELETE
	// /v1/topics/{topic}), after the store's delete: the node ends its
	// terminals and stops serving it at once.
	TopicDeleted func(topic string)
	// Retain and RetainAge are the node's retention defaults, reported with
	// a topic's own (GET /v1/topics/{topic}/retention); 0 is no limit.
	Retain    uint64
	RetainAge time.Duration
	// MaxStreams bounds the event streams open at once; over it a new
	// stream is refused with 503.
	MaxStreams int
	// SSEWriter chooses how HTTP/1.x event streams are written:
	// SSEWriterPool (the default) or SSEWriterGoroutine. HTTP/2 streams
	// always use SSEWriterGoroutine. See stream.go.
	SSEWriter string
	// StreamWorkers bounds the goroutines of SSEWriterPool; default
	// max(16, 8*GOMAXPROCS).
	StreamWorkers int
	// StreamCoalesce is the longest a busy event stream's write waits to
	// carry more events (stream_coalesce.go); default
	// DefaultStreamCoalesce, negative: never.
	StreamCoalesce time.Duration
	// Auth, if set, checks every request's token against the route's need
	// (access.go); nil runs the node open: anyone may call every route.
	Auth *auth.Verifier
	// PublicLedger opens the ledger's proof routes (checkpoint, proofs)
	// to anyone, even with Auth: a transparency log is meant to be
	// checked by anyone.
	PublicLedger bool
	// CORSOrigins are the origins of web pages that may publish and send
	// credentials ("*": every origin, without credentials); every origin
	// may read. See cors.go.
	CORSOrigins []string
	// Limits bound each client's request rate and streams (none if zero).
	Limits limits.Config
	// Metrics, if set, is served at GET /metrics (the admin right when
	// Auth is set), and Observer is told of every request and stream end.
	Metrics  nethttp.Handler
	Observer Observer
}

// Observer is told what the API does, for metrics (package metrics).
type Observer interface {
	// Request is one request: its route pattern, method, status and
	// duration (an event stream's: until its head was written, or on the
	// goroutine writer its whole life).
	Request(route, method string, status int, d time.Duration)
	// StreamEnded is an event stream's end: "slow" (the terminal fell too
	// far behind), "auth" (its token expired) or "other".
	StreamEnded(reason string)
}

// The values of Config.SSEWriter.
const (
	// SSEWriterPool hijacks the connection and serves the stream from a
	// pool of workers, with no goroutine while it is idle.
	SSEWriterPool = "pool"
	// SSEWriterGoroutine writes the stream to its ResponseWriter on the
	// handler's goroutine, as for HTTP/2.
	SSEWriterGoroutine = "goroutine"
)

// Validate reports the first missing or bad field.
func (c Config) Validate() error {
	switch {
	case c.Store == nil:
		return baton.Invalidf("Store", "required")
	case c.Hub == nil:
		return baton.Invalidf("Hub", "required")
	case c.MaxBody < 0:
		return baton.Invalidf("MaxBody", "must not be negative")
	case c.MaxBatch < 0:
		return baton.Invalidf("MaxBatch", "must not be negative")
	case c.Heartbeat < 0:
		return baton.Invalidf("Heartbeat", "must not be negative")
	case c.MaxStreams < 0:
		return baton.Invalidf("MaxStreams", "must not be negative")
	case c.StreamWorkers < 0:
		return baton.Invalidf("StreamWorkers", "must not be negative")
	case c.SSEWriter != "" && c.SSEWriter != SSEWriterPool && c.SSEWriter != SSEWriterGoroutine:
		return baton.Invalidf("SSEWriter", "%q: want %s or %s", c.SSEWriter, SSEWriterPool, SSEWriterGoroutine)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = DefaultReadyTimeout
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = DefaultMaxStreams
	}
	if c.SSEWriter == "" {
		c.SSEWriter = SSEWriterPool
	}
	if c.StreamWorkers == 0 {
		c.StreamWorkers = max(16, 8*runtime.GOMAXPROCS(0))
	}
	if c.StreamCoalesce == 0 {
		c.StreamCoalesce = DefaultStreamCoalesce
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Append == nil && c.Store != nil {
		c.Append = c.Store.Append
	}
	return c
}

// Server serves the HTTP API. It is a net/http.Handler; Open and Close run
// it on a listener.
type Server struct {
	cfg     Config
	log     *slog.Logger
	handler nethttp.Handler

	// done is closed by Close: event streams end at once, since a graceful
	// shutdown would otherwise wait for them forever.
	done      chan struct{}
	closeOnce sync.Once
	streams   *streamer // event streams, both writers; Close ends them
	cors      *corsPolicy
	uiFiles   nethttp.Handler
	limits    *limits.Limits // nil: no per-client limits

	mu  sync.Mutex
	srv *nethttp.Server
	ln  net.Listener
	wg  sync.WaitGroup // the Serve goroutine
	// serveErr receives the error that stopped serving before Close.
	serveErr chan error
	// cancelReqs ends the context of every request still in flight once
	// Close's grace period is over.
	cancelReqs context.CancelFunc
}

// The limit of request headers Open serves. There is no ReadTimeout or
// WriteTimeout: they would cut event streams; handlers set their own
// deadlines through http.ResponseController (Config.ReadTimeout,
// Config.WriteTimeout).
const maxHeaderBytes = 64 << 10

// NewServer returns a server, or the error of cfg.Validate.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new http server: %w", err)
	}
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, log: cfg.Logger, done: make(chan struct{}), streams: newStreamer(cfg, cfg.Logger),
		serveErr: make(chan error, 1), cors: newCORS(cfg.CORSOrigins), uiFiles: uiHandler()}
	if cfg.Limits.Rate > 0 || cfg.Limits.Streams > 0 {
		s.limits = limits.New(cfg.Limits)
	}

	mux := nethttp.NewServeMux()
	// Routes are registered without a method so that a wrong method gets
	// our JSON 405 (with Allow), not the ServeMux's plain text.
	routes := map[string]route{
		"/v1/topics":                   {"GET": s.listTopics},
		"/v1/topics/{topic}":           {"GET": s.getTopic, "DELETE": s.deleteTopic},
		"/v1/topics/{topic}/retention": {"GET": s.getRetention, "PUT": s.putRetention},
		"/v1/topics/{topic}/items":     {"GET": s.listItems, "POST": s.postItems},
		"/v1/topics/{topic}/events":    {"GET": s.events},
		"/v1/events":                   {"GET": s.multiEvents},
		"/v1/ws":                       {"GET": s.ws},
		"/v1/topics/{topic}/snapshot":  {"GET": s.getSnapshot},
		"/v1/topics/{topic}/handovers": {"GET": s.listHandovers},
		"/v1/topics/{topic}/lock":      {"GET": s.getLock},
		"/v1/topics/{topic}/cursor":    {"GET": s.getCursor},
		"/v1/status":                   {"GET": s.status},
		"/healthz":                     {"GET": s.healthz, "HEAD": s.healthz},
		"/readyz":                      {"GET": s.readyz, "HEAD": s.readyz},
		"/metrics":                     {"GET": s.metrics},
		"/v1/status/events":            {"GET": s.statusEvents},
		"/ui/":                         {"GET": s.ui, "HEAD": s.ui},
		"/v1/drain":                    {"POST": s.drain, "DELETE": s.drain},
		forward.Path:                   {"POST": s.postForwarded},
	}
	for path, rt := range s.ledgerRoutes() {
		routes[path] = rt
	}
	needs := s.routeNeeds()
	for path, rt := range routes {
		h, err := s.methods(path, rt, needs)
		if err != nil {
			return nil, fmt.Errorf("new http server: %w", err)
		}
		mux.Handle(path, h)
	}
	mux.Handle("/", nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		s.writeError(w, r, wire.Errorf(baton.CodeNotFound, "no route %s %s", r.Method, clip(r.URL.Path, 256)))
	}))
	s.handler = s.logRequests(s.cors.handler(mux))
	return s, nil
}

// ServeHTTP implements net/http.Handler.
func (s *Server) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) {
	r = withRequestID(w, r)
	defer s.logPanic(r)
	if !s.boundBody(w, r) {
		return
	}
	s.handler.ServeHTTP(w, r)
}

// Open serves on ln in a goroutine until Close; it is the one way the API
// is served (baton serve and the tests alike). If serving stops before
// Close (the listener failed), the error is logged and sent on Err.
func (s *Server) Open(ln net.Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		return fmt.Errorf("open http server: %w", baton.ErrClosed)
	default:
	}
	if s.srv != nil {
		return errors.New("open http server: already open")
	}
	reqCtx, cancel := context.WithCancel(context.Background())
	s.cancelReqs = cancel
	s.srv = &nethttp.Server{
		Handler:           s,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
	}
	s.ln = ln
	srv := s.srv
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, nethttp.ErrServerClosed) {
			s.log.Error("http: serve", "addr", ln.Addr().String(), "err", err)
			s.serveErr <- fmt.Errorf("serve http on %s: %w", ln.Addr(), err)
		}
	}()
	return nil
}

// Err receives the error that stopped serving before Close, if any.
func (s *Server) Err() <-chan error { return s.serveErr }

// Addr returns the listener's address, or nil before Open.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close ends the event streams, lets other requests in flight finish for
// up to ShutdownTimeout, then cancels their contexts and closes every
// connection. It waits for the serving goroutine and is idempotent.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		close(s.done)
		srv := s.srv
		s.mu.Unlock()
		s.streams.close()
		if srv == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		defer cancel()
		if serr := srv.Shutdown(ctx); serr != nil {
			s.cancelReqs()
			err = srv.Close()
		}
		s.cancelReqs()
		s.wg.Wait()
	})
	return err
}

// route maps methods to the handlers of one path.
type route map[string]nethttp.HandlerFunc

// methods dispatches on the method, answering 405 with Allow otherwise.
func (s *Server) methods(path string, rt route, needs map[string]need) (nethttp.Handler, error) {
	allowed := make([]string, 0, len(rt))
	byMethod := make(map[string]need, len(rt))
	for m := range rt {
		allowed = append(allowed, m)
		n, ok := needs[m+" "+path]
		if !ok {
			return nil, fmt.Errorf("route %s %s has no entry in the access table", m, path)
		}
		byMethod[m] = n
	}
	sort.Strings(allowed)
	allow := strings.Join(allowed, ", ")
	return nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		h, ok := rt[r.Method]
		if !ok {
			w.Header().Set("Allow", allow)
			s.writeError(w, r, wire.Errorf(baton.CodeMethod, "method %s not allowed on %s (allowed: %s)", clip(r.Method, 16), r.URL.Path, allow))
			return
		}
		if obs := s.cfg.Observer; obs != nil {
			start := time.Now()
			sw := &statusWriter{ResponseWriter: w}
			w = sw
			defer func() {
				status := sw.status
				if status == 0 {
					status = nethttp.StatusOK
				}
				obs.Request(path, r.Method, status, time.Since(start))
			}()
		}
		r, ok = s.authorize(w, r, byMethod[r.Method])
		if !ok {
			return
		}
		h(w, r)
	}), nil
}

// logRequests logs every request at debug level: its id, method, path,
// status, duration. Never bodies or query values beyond the path.
func (s *Server) logRequests(next nethttp.Handler) nethttp.Handler {
	return nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if !s.log.Enabled(r.Context(), slog.LevelDebug) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		attrs := []any{"method", r.Method, "path", r.URL.Path, "status", sw.status}
		if sw.hijacked {
			// The stream goes on on its own: its end is logged when it
			// ends ("http: stream ended").
			attrs = append(attrs, "hijacked", true)
		} else {
			attrs = append(attrs, "bytes", sw.n)
		}
		s.logFor(r).Debug("http: request", append(attrs, "duration", time.Since(start))...)
	})
}

// statusWriter records the status code. Unwrap lets http.ResponseController
// reach the connection (flush, deadlines).
type statusWriter struct {
	nethttp.ResponseWriter
	status   int
	n        int64
	hijacked bool
}

// answeredOnConn tells the request log and the metrics, if w is (or
// wraps) their writers, that the handler took the connection over and
// answered status on it.
func answeredOnConn(w nethttp.ResponseWriter, status int) {
	for {
		if sw, ok := w.(*statusWriter); ok {
			sw.status, sw.hijacked = status, true
		}
		u, ok := w.(interface{ Unwrap() nethttp.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = nethttp.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() nethttp.ResponseWriter { return w.ResponseWriter }

// writeJSON answers with v as JSON. Item values go out byte for byte as
// stored (no HTML escaping), so that clients can check item hashes.
func writeJSON(w nethttp.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = nethttp.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":{"code":"internal","message":"internal error"}}` + "\n")
	}
	writeBody(w, status, buf.Bytes())
}

// writeBody answers with a JSON body already encoded.
func writeBody(w nethttp.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
