package main

import (
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// TestProfilerHidesTheCommandLine: the command line holds the store URL
// and its password, so the profiler does not serve it.
func TestProfilerHidesTheCommandLine(t *testing.T) {
	args := os.Args
	defer func() { os.Args = args }()
	os.Args = append(os.Args[:len(os.Args):len(os.Args)], "--store", "redis://:SECRET@h:6379/0")
	srv := httptest.NewServer(debugMux())
	defer srv.Close()
	for path, want := range map[string]int{"/debug/pprof/cmdline": 404, "/debug/pprof/goroutine?debug=1": 200} {
		resp, err := nethttp.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || strings.Contains(string(b), "SECRET") {
			t.Errorf("GET %s: %d (want %d), secret shown: %v", path, resp.StatusCode, want, strings.Contains(string(b), "SECRET"))
		}
	}
}
