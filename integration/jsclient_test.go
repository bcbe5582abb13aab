package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/baton-pub/baton/internal/browser"
	"github.com/baton-pub/baton/internal/poll"
)

// jsDir is the JavaScript client (clients/js/README.md).
const jsDir = "../clients/js"

var (
	jsOnce sync.Once
	jsErr  error
)

// needNode skips t without node and npm, or fails it when CI is set
// (.ci/run installs the nodejs and npm packages): the client's tests are
// never left out silently in CI.
func needNode(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"node", "npm"} {
		if _, err := exec.LookPath(bin); err != nil {
			msg := bin + " not found on PATH (apt-get install nodejs npm): the JavaScript client's tests cannot run"
			if os.Getenv("CI") != "" {
				t.Fatalf("%s; CI is set, so a missing %s is a failure", msg, bin)
			}
			t.Skip(msg)
		}
	}
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		t.Fatalf("node --version: %v", err)
	}
	v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
	if major, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0]); major < 20 {
		t.Fatalf("node %s: the JavaScript client needs Node 20 or later", v)
	}
}

// buildJS installs the client's dev dependencies from package-lock.json
// (npm ci runs the prepare script: tsc builds dist/), once per run.
func buildJS(t *testing.T) {
	t.Helper()
	needNode(t)
	jsOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--prefer-offline")
		cmd.Dir = jsDir
		if out, err := cmd.CombinedOutput(); err != nil {
			jsErr = fmt.Errorf("npm ci in clients/js: %v\n%s", err, tail(out, 4096))
		}
	})
	if jsErr != nil {
		t.Fatal(jsErr)
	}
}

// TestJSClient runs the JavaScript client's own tests (npm test in
// clients/js: node --test against real `baton serve` processes of this
// run's binary), so that the README's one test command covers them.
func TestJSClient(t *testing.T) {
	if testing.Short() {
		t.Skip("runs npm and node")
	}
	buildJS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "test")
	cmd.Dir = jsDir
	cmd.Env = append(os.Environ(), "BATON_BIN="+batonBin)
	// npm, node and the nodes node started are one process group, ended
	// together if the run overstays its time.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	summary := regexp.MustCompile(`(?m)^# (tests|pass|fail|cancelled|skipped|todo) \d+$`).FindAll(out, -1)
	if err != nil {
		t.Fatalf("npm test in clients/js: %v\n%s", err, tail(out, 16384))
	}
	t.Logf("npm test in clients/js: %s", bytes.Join(summary, []byte(", ")))
	for _, s := range summary {
		if f := strings.Fields(string(s)); f[1] != "pass" && f[1] != "tests" && f[2] != "0" {
			t.Errorf("npm test: %s", s)
		}
	}
}

// jsPage serves a page of another origin than the nodes' (another port)
// and the built client under /client/, as a web app would.
func jsPage(t *testing.T) *httptest.Server {
	dist, err := filepath.Abs(filepath.Join(jsDir, "dist"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/client/", http.StripPrefix("/client/", http.FileServer(http.Dir(dist))))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<!doctype html><title>app</title>`)
	})
	page := httptest.NewServer(mux)
	t.Cleanup(page.Close)
	return page
}

// jsSubscribeJS starts, in the page, the client subscribed to topic on
// nodes over transport ("sse" or "ws": then it publishes over the socket
// too); window.js holds what it received: got (the seqs, duplicates
// included), node (the node of the last item), errors (what ended the
// iteration), and publish(n), which publishes n updates with the client
// and resolves with their seqs.
func jsSubscribeJS(nodes []string, topic, transport string) string {
	ns, _ := json.Marshal(nodes)
	return fmt.Sprintf(`(async () => {
	const {Baton, BatonError} = await import('/client/index.js');
	const b = new Baton({nodes: %s, transport: %q, backoff: {initialMs: 20, maxMs: 500}, streamIdleMs: 3000, requestTimeoutMs: 3000});
	const topic = %q;
	const st = window.js = {got: [], node: '', errors: [], ended: false};
	st.sub = b.subscribe(topic);
	(async () => {
		try {
			for await (const ev of st.sub) if (ev.type === 'item') { st.got.push(ev.item.seq); st.node = ev.node; }
		} catch (e) { st.errors.push(String(e)); }
		st.ended = true;
	})();
	st.publish = async (n) => (await b.publish(topic, Array.from({length: n}, (_, i) => ({id: 'page', value: {i}})))).map(r => r.seq);
	st.bad = () => b.publish(topic, {id: '', value: 1}).then(() => null,
		e => ({isBatonError: e instanceof BatonError, name: e.name, status: e.status, code: e.code, field: e.field || ''}));
	return true;
})()`, ns, transport, topic)
}

// TestJSClientBrowser: the built client in headless Chromium, from a page
// of another origin listed in --cors-origins, over event streams and over
// the WebSocket (subscribing and publishing): the node it reads from is
// SIGKILLed and it goes on on the other; it receives every acknowledged
// item (its own and a Go source's) once, in order; a bad update is refused
// with a typed error.
func TestJSClientBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium, node and two nodes")
	}
	buildJS(t)
	for _, tr := range []string{"sse", "ws"} {
		t.Run(tr, func(t *testing.T) { jsBrowserRun(t, tr) })
	}
}

func jsBrowserRun(t *testing.T, transport string) {
	page := jsPage(t)
	topic := "quotes.js-" + transport
	c := newClusterWith(t, sqliteEngine, 2, testTTL, "", "--cors-origins", page.URL)
	ctx := browser.Start(t)
	if err := browser.Navigate(ctx, page.URL); err != nil {
		t.Fatal(err)
	}
	var urls []string
	for _, n := range c.nodes {
		urls = append(urls, n.URL())
	}
	if _, err := browser.Eval[bool](ctx, evalWait, jsSubscribeJS(urls, topic, transport)); err != nil {
		t.Fatalf("start the client in the page: %v", err)
	}
	got := func() []uint64 {
		s, err := browser.Eval[[]uint64](ctx, evalWait, `window.js.got`)
		if err != nil {
			t.Fatalf("read the page's seqs: %v", err)
		}
		return s
	}
	first, err := browser.Eval[[]uint64](ctx, evalWait, `window.js.publish(3)`)
	if err != nil {
		t.Fatalf("publish from the page: %v", err)
	}
	if !slices.Equal(first, []uint64{1, 2, 3}) {
		t.Fatalf("the page's first publish got seqs %v, want [1 2 3]", first)
	}
	bad, err := browser.Eval[map[string]any](ctx, evalWait, `window.js.bad()`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"isBatonError": true, "name": "BatonError", "status": float64(400), "code": "invalid", "field": "items[0].id"}
	if fmt.Sprint(bad) != fmt.Sprint(want) {
		t.Errorf("a bad update from the page: %v, want %v", bad, want)
	}

	src := startGoSource(t, c.addrs(), "", topic)
	poll.True(t, 30*time.Second, "the page to receive 10 items", func() bool { return len(got()) >= 10 })
	reading, err := browser.Eval[string](ctx, evalWait, `window.js.node`)
	if err != nil {
		t.Fatal(err)
	}
	victim, alive := c.nodes[0], c.nodes[1]
	if reading == alive.URL() {
		victim, alive = alive, victim
	} else if reading != victim.URL() {
		t.Fatalf("the page reads from %q, not a node", reading)
	}
	n := len(got())
	victim.Kill()
	poll.Until(t, 30*time.Second, "the page to read from the other node and receive 20 more items", func() error {
		node, err := browser.Eval[string](ctx, evalWait, `window.js.node`)
		if err != nil {
			return err
		}
		if k := len(got()); node != alive.URL() || k < n+20 {
			return fmt.Errorf("%d items, the last from %q", k, node)
		}
		return nil
	})
	second, err := browser.Eval[[]uint64](ctx, evalWait, `window.js.publish(2)`)
	if err != nil {
		t.Fatalf("publish from the page after the SIGKILL: %v", err)
	}
	src.stop()
	acked, err := src.acks()
	if err != nil {
		t.Fatalf("go source: %v", err)
	}
	last := slices.Max(append(acked, append(first, second...)...))
	poll.True(t, 30*time.Second, fmt.Sprintf("the page to reach seq %d", last), func() bool {
		s := got()
		return len(s) > 0 && s[len(s)-1] >= last
	})
	all := got()
	for i, s := range all {
		if s != uint64(i+1) {
			t.Fatalf("the page received seq %d at position %d (want %d): %v", s, i, i+1, all)
		}
	}
	errs, err := browser.Eval[[]string](ctx, evalWait, `window.js.errors`)
	if err != nil || len(errs) != 0 {
		t.Errorf("the page's subscription ended: %v %v", errs, err)
	}
	t.Logf("the page received %d items across a SIGKILL of %s", len(all), victim.Name)
}
