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

// TestSetCookie: a cookie set for one origin's host is sent with the
// credentialed requests of a page of another origin of the same site, and
// the page's script cannot read it (HttpOnly).
func TestSetCookie(t *testing.T) {
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><title>page</title>`)
	}))
	defer page.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", page.URL)
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		c, err := r.Cookie("session")
		if err != nil {
			fmt.Fprint(w, `"none"`)
			return
		}
		fmt.Fprintf(w, "%q", c.Value)
	}))
	defer api.Close()
	ctx := browser.Start(t)
	if err := browser.SetCookie(ctx, api.URL, "session", "s1"); err != nil {
		t.Fatal(err)
	}
	if err := browser.Navigate(ctx, page.URL); err != nil {
		t.Fatal(err)
	}
	got, err := browser.Eval[string](ctx, 10*time.Second, fmt.Sprintf(`fetch(%q, {credentials: 'include'}).then(r => r.json())`, api.URL))
	if err != nil {
		t.Fatal(err)
	}
	if got != "s1" {
		t.Errorf("the API got cookie %q, want s1", got)
	}
	if js, err := browser.Eval[string](ctx, 10*time.Second, `document.cookie`); err != nil || js != "" {
		t.Errorf("document.cookie = %q (%v), want the HttpOnly cookie hidden", js, err)
	}
}
