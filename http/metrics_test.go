package http

import (
	nethttp "net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/internal/poll"
)

type observed struct {
	mu       sync.Mutex
	requests []string
	ended    []string
}

func (o *observed) Request(route, method string, status int, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.requests = append(o.requests, method+" "+route+" "+nethttp.StatusText(status))
}

func (o *observed) StreamEnded(reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ended = append(o.ended, reason)
}

func (o *observed) seen() (string, string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.requests, "|"), strings.Join(o.ended, "|")
}

// TestObserverAndMetricsRoute: every request is observed by its route
// pattern (not its path: topics would make series without bound) and
// status, a stream's end by its reason; /metrics serves Config.Metrics.
func TestObserverAndMetricsRoute(t *testing.T) {
	obs := &observed{}
	e := newEnv(t, nil, hub.Options{}, Config{Heartbeat: 50 * time.Millisecond, Observer: obs, Metrics: nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		_, _ = w.Write([]byte("baton_up 1\n"))
	})})
	e.post("quotes", `{"id":"a","value":1}`)
	e.do("GET", "/v1/topics/nope!/items", nil, nil, nil)
	resp, err := nethttp.Get(e.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s := openStream(t, nethttp.DefaultClient, eventsURL(e.url, testTopic, ""), "")
	s.cancel()
	poll.True(t, 10*time.Second, "the stream's end observed", func() bool { _, ended := obs.seen(); return ended == "other" })
	reqs, _ := obs.seen()
	for _, want := range []string{"POST /v1/topics/{topic}/items Created", "GET /v1/topics/{topic}/items Bad Request", "GET /metrics OK", "GET /v1/topics/{topic}/events OK"} {
		if !strings.Contains(reqs, want) {
			t.Errorf("requests observed %q, missing %q", reqs, want)
		}
	}
	if strings.Contains(reqs, "quotes") {
		t.Errorf("a topic name in a route label: %q", reqs)
	}
}
