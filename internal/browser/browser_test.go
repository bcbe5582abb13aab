package browser_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/baton-pub/baton/internal/browser"
)

// TestCrossOriginFetch: a page of one origin fetches from another, which
// the browser allows only because the other answers with CORS headers.
func TestCrossOriginFetch(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/open" {
			w.Header().Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
		}
		fmt.Fprint(w, `"hello"`)
	}))
	defer api.Close()
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><title>page</title>`)
	}))
	defer page.Close()
	ctx := browser.Start(t)
	if err := browser.Navigate(ctx, page.URL); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"/open": "hello", "/closed": "blocked"} {
		got, err := browser.Eval[string](ctx, 10*time.Second, fmt.Sprintf(`fetch(%q).then(r => r.json()).catch(() => "blocked")`, api.URL+path))
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("fetch %s from another origin: %q, want %q", path, got, want)
		}
	}
}
