package http

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/baton-pub/baton/internal/leasetest"
	"io"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/wire"
)

const testTopic = "quotes"

// env is a server under test on a real loopback listener.
type env struct {
	t     *testing.T
	store baton.Store
	hub   *hub.Hub
	srv   *Server
	url   string
}

// newEnv starts a hub and a server on store (a fresh memstore if nil).
func newEnv(t *testing.T, store baton.Store, hopts hub.Options, cfg Config) *env {
	t.Helper()
	if store == nil {
		store = memstore.New(nil)
	}
	h := hub.New(store, hopts)
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg.Store, cfg.Hub = store, h
	srv := mustServer(t, cfg)
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
		srv.Close()
		h.Close()
	})
	return &env{t: t, store: store, hub: h, srv: srv, url: ts.URL}
}

// do sends a request and decodes a JSON answer into out (if not nil).
func (e *env) do(method, path string, body io.Reader, hdr map[string]string, out any) *nethttp.Response {
	e.t.Helper()
	req, err := nethttp.NewRequest(method, e.url+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if method == "POST" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); method != "HEAD" && ct != "application/json" {
		e.t.Fatalf("%s %s: Content-Type %q, body %q", method, path, ct, b)
	}
	if out != nil && method != "HEAD" {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return resp
}

func (e *env) post(topic, body string) (*nethttp.Response, wire.PublishResponse, wire.ErrorResponse) {
	e.t.Helper()
	var raw json.RawMessage
	resp := e.do("POST", "/v1/topics/"+topic+"/items", strings.NewReader(body), nil, &raw)
	var ok wire.PublishResponse
	var bad wire.ErrorResponse
	if resp.StatusCode == nethttp.StatusCreated {
		if err := json.Unmarshal(raw, &ok); err != nil {
			e.t.Fatal(err)
		}
	} else if err := json.Unmarshal(raw, &bad); err != nil || bad.Error == nil {
		e.t.Fatalf("error body %q: %v", raw, err)
	}
	return resp, ok, bad
}

// lastSeq reads how many items the topic's queue ever got.
func (e *env) lastSeq(topic string) uint64 {
	e.t.Helper()
	info, err := e.store.Topic(context.Background(), topic)
	if errors.Is(err, baton.ErrNotFound) {
		return 0
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return info.LastSeq
}

// publisher commits appended items the way a lease holder does.
type publisher struct {
	tb    testing.TB
	st    baton.Store
	topic string
	lease baton.Lease
	n     int
	// readSeq and progress pace publishing (snapshot_test.go).
	readSeq  atomic.Uint64
	progress chan struct{}
}

func newPublisher(tb testing.TB, st baton.Store, topic string) *publisher {
	tb.Helper()
	lease, err := leasetest.Acquire(context.Background(), st, topic, "node-a", time.Hour)
	if err != nil {
		tb.Fatalf("acquire: %v", err)
	}
	return &publisher{tb: tb, st: st, topic: topic, lease: lease}
}

func (p *publisher) appendN(n int, value string) {
	p.tb.Helper()
	ups := make([]baton.Update, n)
	for i := range ups {
		p.n++
		v := value
		if v == "" {
			v = fmt.Sprintf(`{"n":%d}`, p.n)
		}
		ups[i] = baton.Update{ID: fmt.Sprintf("k%d", p.n), Value: json.RawMessage(v), MsgID: fmt.Sprintf("m%d", p.n)}
	}
	if _, err := p.st.Append(context.Background(), p.topic, ups); err != nil {
		p.tb.Fatalf("append: %v", err)
	}
}

// commitAll publishes every appended item, in commits of at most 100.
func (p *publisher) commitAll() {
	p.tb.Helper()
	ctx := context.Background()
	for {
		cur, err := p.st.Cursor(ctx, p.topic)
		if err != nil {
			p.tb.Fatalf("cursor: %v", err)
		}
		items, err := p.st.Items(ctx, p.topic, cur.Seq, 100)
		if err != nil {
			p.tb.Fatalf("items: %v", err)
		}
		if len(items) == 0 {
			return
		}
		c := baton.Commit{Topic: p.topic, Epoch: p.lease.Epoch, Holder: p.lease.Holder, PrevSeq: cur.Seq, Items: items, At: time.Now()}
		if _, err := p.st.Commit(ctx, c); err != nil {
			p.tb.Fatalf("commit: %v", err)
		}
	}
}

func (p *publisher) publish(n int) {
	p.tb.Helper()
	p.appendN(n, "")
	p.commitAll()
}

// checkFor polls cond until it holds or the deadline passes (internal/poll;
// the short name keeps this package's many call sites).
func checkFor(tb testing.TB, d time.Duration, cond func() error) {
	tb.Helper()
	poll.Until(tb, d, "the condition", cond)
}

func TestPostSingle(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{})
	resp, got, _ := e.post(testTopic, `{"id": "quote.600519", "value": {"px": 1712.5,  "ccy": "CNY"}, "msg_id": "src-1"}`)
	if resp.StatusCode != nethttp.StatusCreated {
		t.Fatalf("status %d", resp.StatusCode)
	}
	want := baton.HashItem(testTopic, baton.Update{ID: "quote.600519", Value: json.RawMessage(`{"px":1712.5,"ccy":"CNY"}`), MsgID: "src-1"})
	if len(got.Items) != 1 || got.Items[0].Seq != 1 || got.Items[0].Hash != want || got.Items[0].MsgID != "src-1" || got.Items[0].Duplicate {
		t.Fatalf("items %+v, want seq 1 hash %s", got.Items, want)
	}
	if got.Receipt == nil || *got.Receipt != got.Items[0] {
		t.Fatalf("top-level receipt %+v, want %+v", got.Receipt, got.Items[0])
	}

	// A retry with the same msg id is the same item.
	_, again, _ := e.post(testTopic, `{"id":"quote.600519","value":{"px":1712.5,"ccy":"CNY"},"msg_id":"src-1"}`)
	if len(again.Items) != 1 || again.Items[0].Seq != 1 || again.Items[0].Hash != want || !again.Items[0].Duplicate {
		t.Fatalf("retry: %+v", again.Items)
	}
	if n := e.lastSeq(testTopic); n != 1 {
		t.Fatalf("queue has %d items, want 1", n)
	}

	// Without a msg id the server makes one.
	_, third, _ := e.post(testTopic, `{"id":"x","value":null}`)
	if third.Items[0].Seq != 2 || !strings.HasPrefix(third.Items[0].MsgID, "srv-") {
		t.Fatalf("server msg id: %+v", third.Items[0])
	}
}

func TestPostBatch(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{})
	resp, got, _ := e.post(testTopic, `[{"id":"a","value":1},{"id":"b","value":"two","msg_id":"m2"},{"id":"c","value":[3]}]`)
	if resp.StatusCode != nethttp.StatusCreated {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got.Receipt != nil {
		t.Fatalf("batch answer has a top-level receipt: %+v", got.Receipt)
	}
	for i, r := range got.Items {
		if r.Seq != uint64(i+1) || r.Duplicate {
			t.Fatalf("items[%d] = %+v", i, r)
		}
	}
	// Retrying the item that had a msg id gives its original receipt.
	_, again, _ := e.post(testTopic, `[{"id":"b","value":"two","msg_id":"m2"}]`)
	if again.Items[0].Seq != 2 || !again.Items[0].Duplicate || again.Items[0].Hash != got.Items[1].Hash {
		t.Fatalf("retry %+v", again.Items)
	}
}

func TestPostBadInput(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{MaxBody: 4096, MaxBatch: 3})
	// One good item first, so "unchanged" is visible.
	if resp, _, _ := e.post(testTopic, `{"id":"seed","value":0,"msg_id":"seed"}`); resp.StatusCode != 201 {
		t.Fatal("seed item refused")
	}
	long := strings.Repeat("a", baton.MaxTopicLen+1)
	cases := []struct {
		name, topic, body string
		status            int
		code, field       string
	}{
		{"empty body", testTopic, ``, 400, baton.CodeInvalid, "body"},
		{"invalid JSON", testTopic, `{"id":`, 400, baton.CodeInvalid, "body"},
		{"broken JSON", testTopic, `{"id" "a"}`, 400, baton.CodeInvalid, "body"},
		{"number", testTopic, `42`, 400, baton.CodeInvalid, "body"},
		{"null", testTopic, `null`, 400, baton.CodeInvalid, "body"},
		{"missing id", testTopic, `{"value":1}`, 400, baton.CodeInvalid, "id"},
		{"empty id", testTopic, `{"id":"","value":1}`, 400, baton.CodeInvalid, "id"},
		{"id not a string", testTopic, `{"id":5,"value":1}`, 400, baton.CodeInvalid, "id"},
		{"id control char", testTopic, `{"id":"a\u0001","value":1}`, 400, baton.CodeInvalid, "id"},
		{"id too long", testTopic, `{"id":"` + strings.Repeat("x", baton.MaxIDLen+1) + `","value":1}`, 400, baton.CodeInvalid, "id"},
		{"missing value", testTopic, `{"id":"a"}`, 400, baton.CodeInvalid, "value"},
		{"msg_id not a string", testTopic, `{"id":"a","value":1,"msg_id":7}`, 400, baton.CodeInvalid, "msg_id"},
		{"unknown field", testTopic, `{"id":"a","value":1,"extra":2}`, 400, baton.CodeInvalid, "extra"},
		{"key in other case", testTopic, `{"ID":"a","value":1}`, 400, baton.CodeInvalid, "ID"},
		{"repeated key", testTopic, `{"id":"a","id":"b","value":1}`, 400, baton.CodeInvalid, "id"},
		{"trailing value", testTopic, `{"id":"a","value":1} {"id":"b","value":2}`, 400, baton.CodeInvalid, "body"},
		{"trailing garbage", testTopic, `{"id":"a","value":1}x`, 400, baton.CodeInvalid, "body"},
		{"empty batch", testTopic, `[]`, 400, baton.CodeInvalid, "items"},
		{"batch with a bad item", testTopic, `[{"id":"a","value":1},{"id":"b","value":2},{"id":"","value":3}]`, 400, baton.CodeInvalid, "items[2].id"},
		{"batch with a non-object", testTopic, `[{"id":"a","value":1},"b"]`, 400, baton.CodeInvalid, "items[1]"},
		{"batch with unknown field", testTopic, `[{"id":"a","value":1},{"id":"b","value":2,"v":3}]`, 400, baton.CodeInvalid, "items[1].v"},
		{"batch too large", testTopic, `[{"id":"a","value":1},{"id":"b","value":1},{"id":"c","value":1},{"id":"d","value":1}]`, 413, baton.CodeTooLarge, ""},
		{"body too large", testTopic, `{"id":"a","value":"` + strings.Repeat("x", 5000) + `"}`, 413, baton.CodeTooLarge, ""},
		{"bad topic character", "bad!topic", `{"id":"a","value":1}`, 400, baton.CodeInvalid, "topic"},
		{"bad topic start", "-quotes", `{"id":"a","value":1}`, 400, baton.CodeInvalid, "topic"},
		{"escaped slash in topic", "a%2Fb", `{"id":"a","value":1}`, 400, baton.CodeInvalid, "topic"},
		{"topic too long", long, `{"id":"a","value":1}`, 400, baton.CodeInvalid, "topic"},
	}
	defer func(t0 *testing.T) { e.t = t0 }(e.t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			resp, _, bad := e.post(c.topic, c.body)
			if resp.StatusCode != c.status || bad.Error.Code != c.code || bad.Error.Field != c.field {
				t.Fatalf("got %d %+v, want %d %s field %q", resp.StatusCode, bad.Error, c.status, c.code, c.field)
			}
			if bad.Error.Message == "" {
				t.Fatal("empty message")
			}
			if n := e.lastSeq(testTopic); n != 1 {
				t.Fatalf("queue has %d items after a refused request, want 1", n)
			}
		})
	}
}

func TestPostBodyTooLargeChunked(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{MaxBody: 1024})
	// No Content-Length: the limit applies while reading.
	body := io.MultiReader(strings.NewReader(`{"id":"a","value":"`), strings.NewReader(strings.Repeat("x", 4096)), strings.NewReader(`"}`))
	var bad wire.ErrorResponse
	resp := e.do("POST", "/v1/topics/"+testTopic+"/items", io.NopCloser(body), nil, &bad)
	if resp.StatusCode != 413 || bad.Error.Code != baton.CodeTooLarge {
		t.Fatalf("got %d %+v", resp.StatusCode, bad.Error)
	}
	if n := e.lastSeq(testTopic); n != 0 {
		t.Fatalf("queue has %d items", n)
	}
}

// TestPostBodyShorterThanItsLength: a body that ends before the length
// its request gave is refused as invalid and appends nothing.
func TestPostBodyShorterThanItsLength(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"id":"a","value":1}`
	fmt.Fprintf(conn, "POST /v1/topics/%s/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", testTopic, len(body)+50, body)
	conn.(*net.TCPConn).CloseWrite()
	resp, err := nethttp.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var bad wire.ErrorResponse
	if err := json.NewDecoder(resp.Body).Decode(&bad); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 400 || bad.Error == nil || bad.Error.Code != baton.CodeInvalid || !strings.Contains(bad.Error.Message, "EOF") {
		t.Fatalf("got %d %+v", resp.StatusCode, bad.Error)
	}
	if n := e.lastSeq(testTopic); n != 0 {
		t.Fatalf("queue has %d items", n)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{})
	cases := []struct{ method, path, allow string }{
		{"PUT", "/v1/topics/quotes/items", "GET, POST"},
		{"DELETE", "/v1/topics/quotes/items", "GET, POST"},
		{"POST", "/v1/topics/quotes/events", "GET"},
		{"POST", "/v1/status", "GET"},
		{"POST", "/healthz", "GET, HEAD"},
		{"PATCH", "/v1/topics", "GET"},
	}
	for _, c := range cases {
		var bad wire.ErrorResponse
		resp := e.do(c.method, c.path, nil, nil, &bad)
		if resp.StatusCode != 405 || bad.Error.Code != baton.CodeMethod || resp.Header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d %+v Allow %q, want 405 Allow %q", c.method, c.path, resp.StatusCode, bad.Error, resp.Header.Get("Allow"), c.allow)
		}
	}
}

func TestUnknownRoute(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{})
	for _, p := range []string{"/", "/nope", "/v1", "/v1/topics/quotes/items/extra", "/v1/topics/quotes/nope"} {
		var bad wire.ErrorResponse
		resp := e.do("GET", p, nil, nil, &bad)
		if resp.StatusCode != 404 || bad.Error.Code != baton.CodeNotFound {
			t.Errorf("GET %s: %d %+v", p, resp.StatusCode, bad.Error)
		}
	}
}

func TestListItems(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{})
	p := newPublisher(t, e.store, testTopic)
	p.publish(5)
	p.appendN(3, "") // 6..8 not published

	var got wire.ItemsResponse
	e.do("GET", "/v1/topics/quotes/items?after=2&limit=2", nil, nil, &got)
	if len(got.Items) != 2 || got.Items[0].Seq != 3 || got.Items[1].Seq != 4 || got.NextAfter != 4 {
		t.Fatalf("got %+v", got)
	}
	if got.Items[0].Publisher != "node-a" || got.Items[0].Epoch != p.lease.Epoch || !got.Items[0].Verify() {
		t.Fatalf("item %+v", got.Items[0])
	}
	e.do("GET", "/v1/topics/quotes/items?after=4", nil, nil, &got)
	if len(got.Items) != 1 || got.Items[0].Seq != 5 {
		t.Fatalf("unpublished items listed: %+v", got.Items)
	}
	e.do("GET", "/v1/topics/quotes/items?after=5", nil, nil, &got)
	if len(got.Items) != 0 || got.NextAfter != 5 {
		t.Fatalf("got %+v", got)
	}

	for _, q := range []string{"after=-1", "after=x", "after=", "after=+1", "limit=0", "limit=1001", "limit=ten", "after=18446744073709551616"} {
		var bad wire.ErrorResponse
		resp := e.do("GET", "/v1/topics/quotes/items?"+q, nil, nil, &bad)
		if resp.StatusCode != 400 || bad.Error.Code != baton.CodeInvalid {
			t.Errorf("?%s: %d %+v", q, resp.StatusCode, bad.Error)
		}
	}

	if _, err := e.store.Trim(context.Background(), testTopic, 4); err != nil {
		t.Fatal(err)
	}
	var gone wire.ErrorResponse
	resp := e.do("GET", "/v1/topics/quotes/items?after=1", nil, nil, &gone)
	if resp.StatusCode != 410 || gone.Error.Code != baton.CodeGone || gone.Error.Earliest != 4 {
		t.Fatalf("trimmed: %d %+v", resp.StatusCode, gone.Error)
	}
}

func TestInspectionRoutes(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{
		Status: func(context.Context, int) (wire.Status, error) {
			return wire.Status{NodeStatus: baton.NodeStatus{Node: "node-a", Store: "mem"}}, nil
		},
	})
	ctx := context.Background()
	p := newPublisher(t, e.store, testTopic)
	p.publish(3)

	var lock baton.LockState
	e.do("GET", "/v1/topics/quotes/lock", nil, nil, &lock)
	if !lock.Held || lock.Lease.Holder != "node-a" || lock.Lease.Epoch != p.lease.Epoch {
		t.Fatalf("lock %+v", lock)
	}
	var cur baton.Cursor
	e.do("GET", "/v1/topics/quotes/cursor", nil, nil, &cur)
	if cur.Seq != 3 || cur.Epoch != p.lease.Epoch {
		t.Fatalf("cursor %+v", cur)
	}
	var info baton.TopicInfo
	e.do("GET", "/v1/topics/quotes", nil, nil, &info)
	if info.LastSeq != 3 || info.FirstSeq != 1 {
		t.Fatalf("topic %+v", info)
	}
	if _, err := e.store.Append(ctx, "alpha", []baton.Update{{ID: "a", Value: json.RawMessage(`1`), MsgID: "m"}}); err != nil {
		t.Fatal(err)
	}
	var topics wire.TopicsResponse
	e.do("GET", "/v1/topics", nil, nil, &topics)
	if strings.Join(topics.Topics, ",") != "alpha,quotes" {
		t.Fatalf("topics %v", topics.Topics)
	}
	var st wire.Status
	e.do("GET", "/v1/status", nil, nil, &st)
	if st.Node != "node-a" {
		t.Fatalf("status %+v", st)
	}

	// Two hand-overs: a completed one and one still without a successor.
	if err := e.store.Release(ctx, p.lease, baton.ReasonReleased); err != nil {
		t.Fatal(err)
	}
	l2, err := leasetest.Acquire(ctx, e.store, testTopic, "node-b", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.Release(ctx, l2, baton.ReasonFailed); err != nil {
		t.Fatal(err)
	}
	var hs wire.HandoversResponse
	e.do("GET", "/v1/topics/quotes/handovers", nil, nil, &hs)
	if len(hs.Handovers) != 2 {
		t.Fatalf("handovers %+v", hs)
	}
	newest, oldest := hs.Handovers[0], hs.Handovers[1]
	if newest.Holder != "node-b" || newest.Reason != baton.ReasonFailed || newest.HandoverMS != nil {
		t.Fatalf("newest %+v", newest)
	}
	if oldest.Holder != "node-a" || oldest.Successor != "node-b" || oldest.HandoverMS == nil || *oldest.HandoverMS < 0 || oldest.LastSeq != 3 {
		t.Fatalf("oldest %+v", oldest)
	}
	e.do("GET", "/v1/topics/quotes/handovers?limit=1", nil, nil, &hs)
	if len(hs.Handovers) != 1 {
		t.Fatalf("limit=1: %d records", len(hs.Handovers))
	}
	var raw map[string][]map[string]any
	e.do("GET", "/v1/topics/quotes/handovers", nil, nil, &raw)
	if v, ok := raw["handovers"][0]["handover_ms"]; !ok || v != nil {
		t.Fatalf("handover_ms of an open record = %v (present %v), want null", v, ok)
	}
}

func TestStatusErrors(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{})
	var bad wire.ErrorResponse
	if resp := e.do("GET", "/v1/status", nil, nil, &bad); resp.StatusCode != 503 {
		t.Fatalf("nil Status: %d", resp.StatusCode)
	}
	e2 := newEnv(t, nil, hub.Options{}, Config{Status: func(context.Context, int) (wire.Status, error) {
		return wire.Status{}, errors.New("dial redis://:hunter2@10.0.0.1: refused")
	}})
	resp := e2.do("GET", "/v1/status", nil, nil, &bad)
	if resp.StatusCode != 500 || bad.Error.Code != baton.CodeInternal || strings.Contains(bad.Error.Message, "hunter2") {
		t.Fatalf("internal error: %d %+v", resp.StatusCode, bad.Error)
	}
}

// pingStore makes Ping fail or hang on demand.
type pingStore struct {
	baton.Store
	err  atomic.Pointer[error]
	hang atomic.Bool
}

func (s *pingStore) Ping(ctx context.Context) error {
	if s.hang.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	if p := s.err.Load(); p != nil {
		return *p
	}
	return s.Store.Ping(ctx)
}

func TestHealthAndReadiness(t *testing.T) {
	st := &pingStore{Store: memstore.New(nil)}
	e := newEnv(t, st, hub.Options{}, Config{ReadyTimeout: 50 * time.Millisecond})
	for _, m := range []string{"GET", "HEAD"} {
		if resp := e.do(m, "/healthz", nil, nil, nil); resp.StatusCode != 200 {
			t.Fatalf("%s healthz: %d", m, resp.StatusCode)
		}
		if resp := e.do(m, "/readyz", nil, nil, nil); resp.StatusCode != 200 {
			t.Fatalf("%s readyz: %d", m, resp.StatusCode)
		}
	}
	down := fmt.Errorf("dial: %w", baton.ErrUnavailable)
	st.err.Store(&down)
	var bad wire.ErrorResponse
	if resp := e.do("GET", "/readyz", nil, nil, &bad); resp.StatusCode != 503 || bad.Error.Code != baton.CodeUnavailable {
		t.Fatalf("readyz with store down: %d %+v", resp.StatusCode, bad.Error)
	}
	if resp := e.do("GET", "/healthz", nil, nil, nil); resp.StatusCode != 200 {
		t.Fatalf("healthz with store down: %d", resp.StatusCode)
	}
	st.err.Store(nil)
	st.hang.Store(true)
	if resp := e.do("GET", "/readyz", nil, nil, &bad); resp.StatusCode != 503 {
		t.Fatalf("readyz with store hanging: %d", resp.StatusCode)
	}
}

func TestErrorTable(t *testing.T) {
	want := map[string]int{
		baton.CodeInvalid: 400, baton.CodeUnauthorized: 401, baton.CodeNotFound: 404, baton.CodeMethod: 405,
		baton.CodeConflict: 409, baton.CodeGone: 410, baton.CodeTooLarge: 413, baton.CodeInternal: 500,
		baton.CodeUnavailable: 503, "something-new": 500,
	}
	for code, status := range want {
		if got := StatusOf(code); got != status {
			t.Errorf("StatusOf(%q) = %d, want %d", code, got, status)
		}
	}
	for err, code := range map[error]string{
		baton.Invalidf("id", "missing"):                        baton.CodeInvalid,
		fmt.Errorf("x: %w", baton.ErrNotFound):                 baton.CodeNotFound,
		fmt.Errorf("x: %w", baton.ErrTrimmed):                  baton.CodeGone,
		fmt.Errorf("x: %w", baton.ErrFenced):                   baton.CodeConflict,
		fmt.Errorf("secret://u:p@h: %w", baton.ErrUnavailable): baton.CodeUnavailable,
		errors.New("secret://u:p@h"):                           baton.CodeInternal,
	} {
		e := toError(err)
		if e.Code != code {
			t.Errorf("%v: code %s, want %s", err, e.Code, code)
		}
		if strings.Contains(e.Message, "secret") {
			t.Errorf("%v: message %q leaks the store's error", err, e.Message)
		}
	}
}

// openServer opens a server with a fresh hub and store on a loopback
// listener, wrapped by wrap if not nil. Cleanup closes both.
func openServer(t *testing.T, wrap func(net.Listener) net.Listener) (*Server, net.Listener) {
	t.Helper()
	return openServerConfig(t, Config{}, wrap)
}

// openServerConfig is openServer with cfg (its Store and Hub set here).
func openServerConfig(t *testing.T, cfg Config, wrap func(net.Listener) net.Listener) (*Server, net.Listener) {
	t.Helper()
	st := memstore.New(nil)
	h := hub.New(st, hub.Options{})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	cfg.Store, cfg.Hub = st, h
	srv := mustServer(t, cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	if wrap != nil {
		ln = wrap(ln)
	}
	if err := srv.Open(ln); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, ln
}

func TestOpenClose(t *testing.T) {
	srv, ln := openServer(t, nil)
	if err := srv.Open(ln); err == nil {
		t.Fatal("second Open succeeded")
	}
	base := "http://" + srv.Addr().String()
	resp, err := nethttp.Get(base + "/v1/topics/quotes/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ended := make(chan error, 1)
	go func() { ended <- wire.ReadEvents(resp.Body, func(wire.Event) error { return nil }) }()

	// Close ends the open stream rather than wait for it.
	closed := make(chan error, 1)
	go func() { closed <- srv.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(DefaultShutdownTimeout - time.Second):
		t.Fatal("Close waited for the event stream")
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("stream still open after Close")
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := srv.Open(ln); err == nil {
		t.Fatal("Open after Close succeeded")
	}
}

// mustServer returns NewServer(cfg) or fails the test.
func mustServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

func TestNewServerValidates(t *testing.T) {
	var ie *baton.InvalidError
	if srv, err := NewServer(Config{}); !errors.As(err, &ie) || ie.Field != "Store" || srv != nil {
		t.Fatalf("NewServer without a store: %v, %v", srv, err)
	}
}

func TestConfigValidate(t *testing.T) {
	st := memstore.New(nil)
	h := hub.New(st, hub.Options{})
	for _, c := range []struct {
		cfg   Config
		field string
	}{
		{Config{Hub: h}, "Store"},
		{Config{Store: st}, "Hub"},
		{Config{Store: st, Hub: h, MaxBody: -1}, "MaxBody"},
	} {
		var ie *baton.InvalidError
		if err := c.cfg.Validate(); !errors.As(err, &ie) || ie.Field != c.field {
			t.Errorf("Validate = %v, want field %s", err, c.field)
		}
	}
	if err := (Config{Store: st, Hub: h}).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestUnusedTopicIsEmpty(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{})
	var info baton.TopicInfo
	if resp := e.do("GET", "/v1/topics/never-used", nil, nil, &info); resp.StatusCode != 200 || info.Topic != "never-used" || info.LastSeq != 0 {
		t.Fatalf("%d %+v", resp.StatusCode, info)
	}
	var items wire.ItemsResponse
	if resp := e.do("GET", "/v1/topics/never-used/items", nil, nil, &items); resp.StatusCode != 200 || len(items.Items) != 0 {
		t.Fatalf("%d %+v", resp.StatusCode, items)
	}
}

// TestOpenLimits: the server Open runs refuses a header block over its
// limit (431) and serves an ordinary request.
func TestOpenLimits(t *testing.T) {
	_, ln := openServer(t, nil)
	get := func(hdr string) int {
		req, _ := nethttp.NewRequest("GET", "http://"+ln.Addr().String()+"/healthz", nil)
		req.Header.Set("X-Pad", hdr)
		resp, err := nethttp.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := get("x"); s != 200 {
		t.Fatalf("healthz: %d", s)
	}
	if s := get(strings.Repeat("x", 2*maxHeaderBytes)); s != nethttp.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("a %d-byte header: %d", 2*maxHeaderBytes, s)
	}
}

// failingListener fails every Accept with a permanent error.
type failingListener struct{ net.Listener }

func (failingListener) Accept() (net.Conn, error) { return nil, errors.New("listener broken") }

// TestServeErr: a listener that fails stops serving, and Err says so
// (baton serve exits on it).
func TestServeErr(t *testing.T) {
	srv, _ := openServer(t, func(ln net.Listener) net.Listener { return failingListener{ln} })
	if err := <-srv.Err(); err == nil || !strings.Contains(err.Error(), "listener broken") {
		t.Fatalf("Err: %v", err)
	}
}
