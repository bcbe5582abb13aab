// Command statusbench measures the status routes of a running node at many
// topics (docs/benchmarks.md, "Status at many topics"): it creates -topics
// topics through the HTTP API (one item each), then times -n sequential
// requests to each of -paths and prints p50, p99 and the slowest.
//
//	go run ./internal/statusbench -url http://127.0.0.1:8080 -topics 10000 -n 100
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	base := flag.String("url", "http://127.0.0.1:8080", "the node's base URL")
	topics := flag.Int("topics", 10000, "topics to create first (0: none)")
	n := flag.Int("n", 100, "requests per path (0: only create the topics)")
	paths := flag.String("paths", "/v1/status,/v1/topics?status=true", "paths to time, comma-separated")
	timeout := flag.Duration("timeout", 60*time.Second, "timeout of each request")
	flag.Parse()
	c := &http.Client{Timeout: *timeout}
	if err := create(c, *base, *topics); err != nil {
		fmt.Fprintln(os.Stderr, "statusbench:", err)
		os.Exit(1)
	}
	if *n == 0 {
		return
	}
	for _, p := range strings.Split(*paths, ",") {
		var ds []time.Duration
		failed := 0
		for range *n {
			start := time.Now()
			resp, err := c.Get(*base + p)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			if err != nil {
				failed++
				fmt.Fprintf(os.Stderr, "statusbench: GET %s: %v\n", p, err)
				continue
			}
			ds = append(ds, time.Since(start))
		}
		if len(ds) == 0 {
			fmt.Printf("%s: every request failed\n", p)
			continue
		}
		slices.Sort(ds)
		q := func(f float64) time.Duration { return ds[min(len(ds)-1, int(f*float64(len(ds))))] }
		fmt.Printf("%s: n=%d failed=%d p50=%v p99=%v max=%v\n", p, len(ds), failed,
			q(0.50).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), ds[len(ds)-1].Round(10*time.Microsecond))
	}
}

// create publishes one item to each of n topics, eight at a time.
func create(c *http.Client, base string, n int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	start := time.Now()
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				body := fmt.Sprintf(`{"id":"k","msg_id":"m%d","value":%d}`, i, i)
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost,
					fmt.Sprintf("%s/v1/topics/t%05d/items", base, i), bytes.NewBufferString(body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := c.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusCreated {
						err = fmt.Errorf("publish to t%05d: status %d", i, resp.StatusCode)
					}
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	if n > 0 {
		fmt.Printf("created %d topics in %v\n", n, time.Since(start).Round(time.Millisecond))
	}
	return nil
}
