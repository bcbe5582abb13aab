package http

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	nethttp "net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/wire"
)

// jsonLog keeps a debug-level JSON log for a test to read line by line.
type jsonLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *jsonLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *jsonLog) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// lines decodes every record logged so far.
func (l *jsonLog) lines(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// withID lists the records of request id.
func (l *jsonLog) withID(t *testing.T, id string) []map[string]any {
	var out []map[string]any
	for _, m := range l.lines(t) {
		if m["request_id"] == id {
			out = append(out, m)
		}
	}
	return out
}

// TestRequestIDs: a sane X-Request-Id is kept, anything else (too long,
// spaces, control or non-ASCII bytes) replaced by a generated one; either
// way it is echoed in the response, in the JSON error body and in every log
// line the request causes, a stream's end included.
func TestRequestIDs(t *testing.T) {
	var log jsonLog
	e := newEnv(t, nil, hub.Options{}, Config{Logger: log.logger(), Status: func(context.Context, int) (wire.Status, error) {
		return wire.Status{NodeStatus: baton.NodeStatus{Problems: []baton.Problem{{Kind: baton.ProblemStalled, Topic: "q"}}}}, nil
	}})
	generated := regexp.MustCompile(`^[0-9a-f]{32}$`)
	for _, tc := range []struct {
		sent string
		kept bool
	}{
		{"abc-123_X.y:z/{}", true},
		{strings.Repeat("r", maxRequestID), true},
		{"", false},
		{strings.Repeat("r", maxRequestID+1), false},
		{"two words", false},
		{"tab\there", false},
		{"caf\u00e9", false},
	} {
		hdr := map[string]string{}
		if tc.sent != "" {
			hdr[RequestIDHeader] = tc.sent
		}
		var er wire.ErrorResponse
		resp := e.do("GET", "/v1/no-such-route", nil, hdr, &er)
		got := resp.Header.Get(RequestIDHeader)
		switch {
		case tc.kept && got != tc.sent:
			t.Errorf("sent %q: echoed %q", tc.sent, got)
		case !tc.kept && !generated.MatchString(got):
			t.Errorf("sent %q: echoed %q, want a generated id", tc.sent, got)
		}
		if er.Error == nil || er.Error.RequestID != got {
			t.Errorf("sent %q: error body %+v, want request_id %q", tc.sent, er.Error, got)
		}
		lines := log.withID(t, got)
		if len(lines) != 2 || lines[0]["msg"] != "http: request refused" || lines[1]["msg"] != "http: request" {
			t.Errorf("sent %q: log lines with its id: %v", tc.sent, lines)
		}
	}
	// Two requests without an id get different ones.
	a := e.do("GET", "/healthz", nil, nil, nil).Header.Get(RequestIDHeader)
	b := e.do("GET", "/healthz", nil, nil, nil).Header.Get(RequestIDHeader)
	if a == b || !generated.MatchString(a) {
		t.Errorf("generated ids %q and %q", a, b)
	}

	// Not ready: the 503's body names the request too.
	var nr wire.NotReady
	resp := e.do("GET", "/readyz", nil, map[string]string{RequestIDHeader: "ready-1"}, &nr)
	if resp.StatusCode != 503 || nr.Error == nil || nr.Error.RequestID != "ready-1" {
		t.Errorf("readyz: %d %+v", resp.StatusCode, nr.Error)
	}
	if lines := log.withID(t, "ready-1"); len(lines) != 2 || lines[0]["msg"] != "http: not ready" {
		t.Errorf("readyz log lines: %v", lines)
	}

	// Every log line of a POST names it.
	before := len(log.lines(t))
	e.do("POST", "/v1/topics/t/items", strings.NewReader(`{"id":"k","value":1}`), map[string]string{RequestIDHeader: "post-1"}, nil)
	for _, m := range log.lines(t)[before:] {
		if m["request_id"] != "post-1" {
			t.Errorf("a line of the POST without its id: %v", m)
		}
	}

	// An event stream: opened and ended, both lines with its id.
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := nethttp.NewRequestWithContext(ctx, "GET", e.url+"/v1/topics/t/events", nil)
	req.Header.Set(RequestIDHeader, "stream-1")
	sresp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := sresp.Header.Get(RequestIDHeader); got != "stream-1" {
		t.Errorf("stream: echoed %q", got)
	}
	// Read the first event, then hang up.
	if _, err := bufio.NewReader(sresp.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, _ = io.Copy(io.Discard, sresp.Body)
	sresp.Body.Close()
	poll.True(t, 10*time.Second, "the stream's end logged with its id", func() bool {
		for _, m := range log.withID(t, "stream-1") {
			if m["msg"] == "http: stream ended" {
				return true
			}
		}
		return false
	})
	if lines := log.withID(t, "stream-1"); lines[0]["msg"] != "http: stream opened" {
		t.Errorf("stream log lines: %v", lines)
	}
}

// BenchmarkRequestID is what a request's id costs every request: kept
// from the client, or generated.
func BenchmarkRequestID(b *testing.B) {
	for _, sent := range []string{"client-id-1", ""} {
		name := "kept"
		if sent == "" {
			name = "generated"
		}
		b.Run(name, func(b *testing.B) {
			r := httptest.NewRequest("GET", "/healthz", nil)
			if sent != "" {
				r.Header.Set(RequestIDHeader, sent)
			}
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				_ = withRequestID(w, r)
			}
		})
	}
}

// TestPanicLoggedWithRequestID: a handler's panic is logged once, at
// error level, with the request's id and the stack; the client's
// connection is closed, as net/http does for any panic.
func TestPanicLoggedWithRequestID(t *testing.T) {
	var log jsonLog
	e := newEnv(t, nil, hub.Options{}, Config{Logger: log.logger(), Status: func(context.Context, int) (wire.Status, error) {
		panic("status exploded")
	}})
	req, _ := nethttp.NewRequest("GET", e.url+"/v1/status", nil)
	req.Header.Set(RequestIDHeader, "boom-1")
	if resp, err := nethttp.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("a panicking handler answered %d", resp.StatusCode)
	}
	var panics []map[string]any
	for _, m := range log.withID(t, "boom-1") {
		if m["msg"] == "http: panic serving request" {
			panics = append(panics, m)
		}
	}
	if len(panics) != 1 || panics[0]["level"] != "ERROR" || panics[0]["panic"] != "status exploded" ||
		!strings.Contains(panics[0]["stack"].(string), "requestid_test.go") {
		t.Errorf("panic log lines: %v", panics)
	}
}
