package metrics_test

import (
	"context"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	bhttp "github.com/baton-pub/baton/http"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/metrics"
	"github.com/baton-pub/baton/wire"
)

// BenchmarkMetricsCost measures ingest (one op: a POST of 100 items) on a
// server without metrics and on one with them (every store call timed,
// every request observed) while /metrics is scraped every second, in the
// same run. docs/benchmarks.md records the figures.
func BenchmarkMetricsCost(b *testing.B) {
	var body strings.Builder
	body.WriteString("[")
	for i := range 100 {
		if i > 0 {
			body.WriteString(",")
		}
		body.WriteString(`{"id":"quote.600519","value":{"px":1712.5,"n":` + strconv.Itoa(i) + `}}`)
	}
	body.WriteString("]")
	for _, mode := range []string{"off", "on"} {
		b.Run(mode, func(b *testing.B) {
			var st baton.Store = memstore.New(nil)
			cfg := bhttp.Config{}
			if mode == "on" {
				m := metrics.New(metrics.Config{Status: func(context.Context, int) (wire.Status, error) { return wire.Status{}, nil }})
				st = m.Store(st)
				cfg.Metrics, cfg.Observer = m.Handler(), m
				stop := make(chan struct{})
				defer close(stop)
				go func() {
					t := time.NewTicker(time.Second)
					defer t.Stop()
					for {
						select {
						case <-stop:
							return
						case <-t.C:
							m.Handler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/metrics", nil))
						}
					}
				}()
			}
			h := hub.New(st, hub.Options{})
			cfg.Store, cfg.Hub = st, h
			srv, err := bhttp.NewServer(cfg)
			if err != nil {
				b.Fatal(err)
			}
			ts := httptest.NewServer(srv)
			defer ts.Close()
			b.ResetTimer()
			for range b.N {
				req, _ := nethttp.NewRequest("POST", ts.URL+"/v1/topics/quotes/items", strings.NewReader(body.String()))
				req.Header.Set("Content-Type", "application/json")
				resp, err := nethttp.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 201 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "items/s")
		})
	}
}
