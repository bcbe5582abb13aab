package http

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	nethttp "net/http"
	"runtime/debug"
	"sync/atomic"
)

// RequestIDHeader carries a request's id: taken from the request if sane
// (validRequestID), else generated, and always echoed in the response. The
// id is in every log line of the request and in its JSON error body
// (docs/operations.md, "Logs"), so that a client's report and the node's
// log meet on one string.
const RequestIDHeader = "X-Request-Id"

// maxRequestID bounds a client's request id: longer ones are replaced, so
// that a client cannot make every log line of its requests large.
const maxRequestID = 128

// reqState is what the server learns of a request as it serves it: its
// id (ServeHTTP) and its caller (authorize). One value in the request's
// context, set once, so that a request is copied once for both.
type reqState struct {
	id     string
	caller caller
}

type reqStateKey struct{}

// stateOf returns r's state, nil outside ServeHTTP (a test calling a
// handler directly).
func stateOf(r *nethttp.Request) *reqState {
	st, _ := r.Context().Value(reqStateKey{}).(*reqState)
	return st
}

// validRequestID reports whether a client's id may be kept: 1 to
// maxRequestID bytes of printable ASCII without spaces, so that it cannot
// forge a log line or a header, nor carry a payload of any size.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestID {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// The generated ids: a random prefix per process, so that ids from
// different nodes and restarts do not meet, and a counter, so that making
// one costs no system call (BenchmarkRequestID). An id is a name, not a
// secret: it may be guessed.
var (
	idPrefix  = randomPrefix()
	idCounter atomic.Uint64
)

func randomPrefix() [8]byte {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
	return b
}

// newRequestID returns the next generated id: 32 hex digits.
func newRequestID() string {
	var b [16]byte
	copy(b[:8], idPrefix[:])
	binary.BigEndian.PutUint64(b[8:], idCounter.Add(1))
	return hex.EncodeToString(b[:])
}

// withRequestID gives r its id (the client's if sane, else a new one),
// echoes it in w's header and returns r with it in its context.
func withRequestID(w nethttp.ResponseWriter, r *nethttp.Request) *nethttp.Request {
	id := r.Header.Get(RequestIDHeader)
	if !validRequestID(id) {
		id = newRequestID()
	}
	w.Header().Set(RequestIDHeader, id)
	return r.WithContext(context.WithValue(r.Context(), reqStateKey{}, &reqState{id: id}))
}

// requestID is r's id ("" outside ServeHTTP, e.g. in a test calling a
// handler directly).
func requestID(r *nethttp.Request) string {
	if st := stateOf(r); st != nil {
		return st.id
	}
	return ""
}

// logFor is the logger of r's log lines: the server's, with its request id.
func (s *Server) logFor(r *nethttp.Request) *slog.Logger {
	return s.log.With("request_id", requestID(r))
}

// debugFor logs at debug level as logFor does, and costs nothing when the
// level is off (a stream's opening is logged there: thousands at once when
// clients reconnect).
func (s *Server) debugFor(r *nethttp.Request, msg string, attrs ...any) {
	if s.log.Enabled(r.Context(), slog.LevelDebug) {
		s.logFor(r).Debug(msg, attrs...)
	}
}

// logPanic, deferred by ServeHTTP, logs a handler's panic with its request
// id and stack, then lets net/http end the connection as it does for any
// panic (nethttp.ErrAbortHandler: without logging it a second time).
func (s *Server) logPanic(r *nethttp.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v != nethttp.ErrAbortHandler {
		s.logFor(r).Error("http: panic serving request", "method", r.Method, "path", r.URL.Path,
			"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	}
	panic(nethttp.ErrAbortHandler)
}
