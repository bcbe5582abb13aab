// Package browser starts a real headless Chromium for tests, driven over
// the DevTools protocol with chromedp: pages of another origin that
// subscribe with EventSource and publish with fetch, as a web app does.
package browser

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// binaries are the names Chromium goes by.
var binaries = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// Find returns the path of a Chromium binary, or "" if none is on PATH.
func Find() string {
	for _, b := range binaries {
		if p, err := exec.LookPath(b); err == nil {
			return p
		}
	}
	return ""
}

// Start starts a headless Chromium for t and returns a context for
// chromedp actions on one tab; the browser ends with the test. Without
// Chromium it skips t, or fails it when the environment variable CI is
// set (.ci/run installs the chromium package).
func Start(t testing.TB) context.Context {
	t.Helper()
	bin := Find()
	if bin == "" {
		msg := "chromium not found on PATH (apt-get install chromium)"
		if os.Getenv("CI") != "" {
			t.Fatalf("%s; CI is set, so a missing browser is a failure", msg)
		}
		t.Skip(msg)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// Start the browser now, on a context without a deadline (a deadline
	// on the first Run would end the browser with it).
	if _, err := chromedp.Run(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// Eval evaluates a JavaScript expression in the tab, awaits it when it is a
// promise, and decodes its value, with a deadline.
func Eval[T any](ctx context.Context, d time.Duration, js string) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
}

// Navigate opens url in the tab and waits for the page to load.
func Navigate(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Navigate(url))
	return err
}

// SetCookie sets an HttpOnly, SameSite=Lax cookie for the host of url, as
// a login page of that host would: a page of another origin cannot set it
// with document.cookie, yet the browser sends it to the host with the
// page's credentialed requests when both are of one site.
func SetCookie(ctx context.Context, url, name, value string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	httpOnly := true
	_, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{
		Name: name, Value: value, URL: url, Path: "/", HTTPOnly: &httpOnly, SameSite: network.CookieSameSiteLax})
	return err
}

// Screenshot saves a PNG of the whole page, width pixels wide, to path.
func Screenshot(ctx context.Context, width int64, path string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.EmulateViewport(width, 800)); err != nil {
		return err
	}
	b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
