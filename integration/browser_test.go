package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/auth"
	"github.com/baton-pub/baton/client"
	"github.com/baton-pub/baton/internal/browser"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/proc"
)

// evalWait bounds one script evaluation in the page.
const evalWait = 10 * time.Second

// pageServer serves an empty page: its origin is http://127.0.0.1:PORT,
// another origin than every node's but the same site, so the browser sends
// the nodes' SameSite=Lax cookie with the page's credentialed requests.
func pageServer(t *testing.T) *httptest.Server {
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<!doctype html><title>app</title>`)
	}))
	t.Cleanup(page.Close)
	return page
}

// subscribeJS starts, in the page, what a web app does: a native
// EventSource on the first node; on an error it closes it and opens one on
// the next node after the last seq it received. Its state is window.sub:
// got lists every item's seq as received (duplicates included), node is
// the node of the open stream ("" while none is open), errors counts the
// streams that failed. It stops the page's previous subscription.
func subscribeJS(nodes []string, topic string, credentials bool) string {
	ns, _ := json.Marshal(nodes)
	return fmt.Sprintf(`(() => {
	if (window.sub) window.sub.stop();
	const nodes = %s, topic = %q, withCredentials = %t;
	const st = window.sub = {got: [], node: '', errors: 0, stopped: false, es: null};
	st.stop = () => { st.stopped = true; if (st.es) st.es.close(); };
	let last = 0, i = 0;
	function open() {
		if (st.stopped) return;
		const base = nodes[i %% nodes.length];
		const es = st.es = new EventSource(base + '/v1/topics/' + topic + '/events?after=' + last, {withCredentials});
		es.onopen = () => { st.node = base; };
		es.addEventListener('item', e => { last = JSON.parse(e.data).seq; st.got.push(last); });
		es.onerror = () => { es.close(); st.node = ''; st.errors++; i++; setTimeout(open, 100); };
	}
	open();
	return true;
})()`, ns, topic, credentials)
}

// fetchResult is what publishJS gives back: the status (-1: the browser
// blocked the request) and the seq of the receipt.
type fetchResult struct {
	Status int    `json:"status"`
	Seq    uint64 `json:"seq"`
}

// publishJS publishes one update from the page with fetch, as a web app
// does; credentials is the fetch's mode ('include' sends the cookies).
func publishJS(node, topic, msgID, credentials string) string {
	return fmt.Sprintf(`fetch(%q, {method: 'POST', credentials: %q,
		headers: {'Content-Type': 'application/json'},
		body: JSON.stringify({id: 'page', value: {from: 'browser'}, msg_id: %q})})
	.then(r => r.json().then(b => ({status: r.status, seq: b.items && b.items.length ? b.items[0].seq : 0})))
	.catch(() => ({status: -1, seq: 0}))`, node+"/v1/topics/"+topic+"/items", credentials, msgID)
}

// pageSeqs reads what the page received.
func pageSeqs(t *testing.T, ctx context.Context) []uint64 {
	t.Helper()
	got, err := browser.Eval[[]uint64](ctx, evalWait, `window.sub.got`)
	if err != nil {
		t.Fatalf("read the page's seqs: %v", err)
	}
	return got
}

// goSource publishes one update at a time with the client library, with
// its token, until stopped, and keeps the acknowledged seqs.
type goSource struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	acked  []uint64
	err    error
}

func startGoSource(t *testing.T, nodes []string, token, topic string) *goSource {
	cl, err := client.New(slices.Clone(nodes), client.Options{Token: token, Backoff: 10 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond, RequestTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &goSource{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(20 * time.Millisecond) // the source's rate, not a synchronisation
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			u := baton.Update{ID: fmt.Sprintf("k%d", i%10), Value: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)), MsgID: fmt.Sprintf("go-%d", i)}
			rs, err := cl.Publish(ctx, topic, []baton.Update{u})
			s.mu.Lock()
			if err == nil {
				s.acked = append(s.acked, rs[0].Seq)
			} else if ctx.Err() == nil {
				s.err = err
			}
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(s.stop)
	return s
}

func (s *goSource) stop() { s.cancel(); <-s.done }

func (s *goSource) acks() ([]uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.acked), s.err
}

// TestBrowserCrossOrigin: headless Chromium on pages of other origins, on
// both engines. A page of an origin listed in --cors-origins, with its
// token in the baton_token cookie, subscribes with EventSource and
// publishes with fetch; the node it reads from is SIGKILLed and it goes on
// on the next node; it receives every acknowledged item once and in order.
// A page of an unlisted origin reads an open node without credentials,
// and may publish to neither node: the browser blocks its fetch, nothing
// is appended.
func TestBrowserCrossOrigin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium and four nodes")
	}
	for name, eng := range engines {
		t.Run(name, func(t *testing.T) {
			key, secret := hmacKey(t)
			admin := mint(t, key, "--admin")
			const topic = "quotes.eur"
			pub := mint(t, key, "--publish", topic, "--subscribe", topic, "--sub", "go-source")
			app, stranger := pageServer(t), pageServer(t)
			c := newClusterWith(t, eng, 3, testTTL, admin, "--jwt-key", key, "--cors-origins", app.URL)
			open := newCluster(t, eng, 1, testTTL).nodes[0]

			ctx := browser.Start(t)
			// The user's token, as a login on the nodes' host would set it.
			user := mint(t, key, "--publish", topic, "--subscribe", topic, "--sub", "browser")
			if err := browser.SetCookie(ctx, c.nodes[0].URL(), auth.CookieName, user); err != nil {
				t.Fatalf("set cookie: %v", err)
			}

			strangerPage(t, ctx, stranger.URL, open, c.nodes[0], topic)

			// The page of the listed origin.
			if err := browser.Navigate(ctx, app.URL); err != nil {
				t.Fatal(err)
			}
			first := publishFromPage(t, ctx, c.nodes[1], topic, "page-1")
			if first != 1 {
				t.Errorf("the first publish after the stranger's blocked ones has seq %d, want 1", first)
			}
			holder, _ := c.holder(topic)
			order := []*proc.Node{holder}
			for _, n := range c.nodes {
				if n != holder {
					order = append(order, n)
				}
			}
			var urls []string
			for _, n := range order {
				urls = append(urls, n.URL())
			}
			if _, err := browser.Eval[bool](ctx, evalWait, subscribeJS(urls, topic, true)); err != nil {
				t.Fatal(err)
			}
			poll.True(t, 30*time.Second, "the page to receive its own item", func() bool { return len(pageSeqs(t, ctx)) >= 1 })

			src := startGoSource(t, c.addrs(), pub, topic)
			poll.True(t, 30*time.Second, "the page to receive 10 items", func() bool { return len(pageSeqs(t, ctx)) >= 10 })
			reading, err := browser.Eval[string](ctx, evalWait, `window.sub.node`)
			if err != nil {
				t.Fatal(err)
			}
			var victim *proc.Node
			for _, n := range c.nodes {
				if n.URL() == reading {
					victim = n
				}
			}
			if victim == nil {
				t.Fatalf("the page reads from %q, not a node", reading)
			}
			n := len(pageSeqs(t, ctx))
			victim.Kill()
			poll.Until(t, 30*time.Second, "the page to read from another node and receive 20 more items", func() error {
				node, err := browser.Eval[string](ctx, evalWait, `window.sub.node`)
				if err != nil {
					return err
				}
				if node == "" || node == victim.URL() {
					return fmt.Errorf("reading from %q", node)
				}
				if got := len(pageSeqs(t, ctx)); got < n+20 {
					return fmt.Errorf("%d items", got)
				}
				return nil
			})
			alive := c.nodes[0]
			if alive == victim {
				alive = c.nodes[1]
			}
			second := publishFromPage(t, ctx, alive, topic, "page-2")
			got, acked := pageGotEvery(t, ctx, src, first, second)
			t.Logf("the page received %d items, %d acknowledged, across a SIGKILL of %s", len(got), len(acked), victim.Name)
			for _, n := range c.nodes {
				log, err := os.ReadFile(n.Log())
				if err != nil {
					t.Fatal(err)
				}
				noSecretIn(t, n.Name+"'s log", log, []string{secret, user, pub, admin})
			}
		})
	}
}

// pageGotEvery stops src and waits until the page has received every seq
// src and the page itself (pageAcked) had acknowledged; the page must have
// received each seq from 1 once, in order (only they publish to the
// topic). It returns what the page received and the acknowledged seqs.
func pageGotEvery(t *testing.T, ctx context.Context, src *goSource, pageAcked ...uint64) (got, acked []uint64) {
	t.Helper()
	src.stop()
	acked, err := src.acks()
	if err != nil {
		t.Fatalf("go source: %v", err)
	}
	acked = append(acked, pageAcked...)
	last := slices.Max(acked)
	poll.True(t, 30*time.Second, fmt.Sprintf("the page to reach seq %d", last), func() bool {
		got := pageSeqs(t, ctx)
		return len(got) > 0 && got[len(got)-1] >= last
	})
	got = pageSeqs(t, ctx)
	for i, s := range got {
		if s != uint64(i+1) {
			t.Fatalf("the page received seq %d at position %d (want %d): %v", s, i, i+1, got)
		}
	}
	return got, acked
}

// publishFromPage publishes from the open page with fetch and returns the
// receipt's seq; it retries while the topic has no holder (503).
func publishFromPage(t *testing.T, ctx context.Context, node *proc.Node, topic, msgID string) uint64 {
	t.Helper()
	var r fetchResult
	poll.Until(t, 30*time.Second, "a publish from the page", func() error {
		var err error
		if r, err = browser.Eval[fetchResult](ctx, evalWait, publishJS(node.URL(), topic, msgID, "include")); err != nil {
			return err
		}
		if r.Status == http.StatusServiceUnavailable {
			return fmt.Errorf("status %d", r.Status)
		}
		return nil
	})
	if r.Status != http.StatusCreated {
		t.Fatalf("publish %s to %s from the page of a listed origin with the cookie token: status %d, want 201", msgID, node.Name, r.Status)
	}
	return r.Seq
}

// strangerPage opens a page of an origin not listed anywhere. It reads the
// open node with EventSource (without credentials), and its fetch POST is
// blocked by the browser, on the open node and on the secured one, though
// the browser holds the user's cookie with the right to publish to
// securedTopic: nothing appended.
func strangerPage(t *testing.T, ctx context.Context, pageURL string, open, secured *proc.Node, securedTopic string) {
	t.Helper()
	if err := browser.Navigate(ctx, pageURL); err != nil {
		t.Fatal(err)
	}
	const topic = "news"
	cl, err := client.New([]string{open.URL()}, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	publish := func(msgID string) uint64 {
		rs, err := cl.Publish(pctx, topic, []baton.Update{{ID: "k", Value: json.RawMessage(`1`), MsgID: msgID}})
		if err != nil {
			t.Fatalf("publish to the open node: %v", err)
		}
		return rs[0].Seq
	}
	publish("go-1")
	if _, err := browser.Eval[bool](ctx, evalWait, subscribeJS([]string{open.URL()}, topic, false)); err != nil {
		t.Fatal(err)
	}
	poll.True(t, 30*time.Second, "the stranger's page to read the open node", func() bool { return len(pageSeqs(t, ctx)) >= 1 })
	for _, to := range []struct {
		n     *proc.Node
		topic string
	}{{open, topic}, {secured, securedTopic}} {
		for _, mode := range []string{"include", "omit"} {
			r, err := browser.Eval[fetchResult](ctx, evalWait, publishJS(to.n.URL(), to.topic, "stranger", mode))
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != -1 {
				t.Errorf("fetch POST (credentials %s) from an unlisted origin to %s: status %d, want blocked by the browser", mode, to.n.Name, r.Status)
			}
		}
	}
	if s := publish("go-2"); s != 2 {
		t.Errorf("after the stranger's blocked publish, the next has seq %d, want 2", s)
	}
	poll.True(t, 30*time.Second, "the stranger's page to read seq 2", func() bool { return len(pageSeqs(t, ctx)) >= 2 })
	if got := pageSeqs(t, ctx); !slices.Equal(got, []uint64{1, 2}) {
		t.Errorf("the stranger's page received %v, want [1 2]", got)
	}
	// With credentials, the stranger's EventSource fails on the secured
	// node though the browser sends the user's cookie: the node does not
	// allow credentials to an unlisted origin.
	if _, err := browser.Eval[bool](ctx, evalWait, subscribeJS([]string{secured.URL()}, securedTopic, true)); err != nil {
		t.Fatal(err)
	}
	poll.True(t, 30*time.Second, "the stranger's credentialed EventSource on the secured node to fail twice", func() bool {
		n, err := browser.Eval[int](ctx, evalWait, `window.sub.errors`)
		return err == nil && n >= 2
	})
}

// TestBrowserTokenRenewal: a page whose token lives 3s subscribes with
// EventSource; at each "auth" event (its token expired) it asks its own
// server for a new token, which that server sets as the baton_token cookie
// (one site: the browser sends it to the nodes too), and resumes after the
// last seq it received. It receives every item once, in order, across two
// renewals.
func TestBrowserTokenRenewal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	for name, eng := range engines {
		t.Run(name, func(t *testing.T) {
			key, _ := hmacKey(t)
			const topic = "quotes.eur"
			var refreshes atomic.Int64
			app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/refresh" {
					fmt.Fprint(w, `<!doctype html><title>app</title>`)
					return
				}
				out, err := exec.Command(batonBin, "token", "--key", key, "--subscribe", topic, "--ttl", "3s").Output()
				if err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				http.SetCookie(w, &http.Cookie{Name: auth.CookieName, Value: strings.TrimSpace(string(out)), Path: "/",
					HttpOnly: true, SameSite: http.SameSiteLaxMode})
				refreshes.Add(1)
			}))
			t.Cleanup(app.Close)
			c := newClusterWith(t, eng, 1, testTTL, "", "--jwt-key", key, "--cors-origins", app.URL)
			n := c.nodes[0]
			src := startGoSource(t, c.addrs(), mint(t, key, "--publish", topic), topic)

			ctx := browser.Start(t)
			if err := browser.Navigate(ctx, app.URL); err != nil {
				t.Fatal(err)
			}
			js := fmt.Sprintf(`(async () => {
	const st = window.sub = {got: [], auths: 0};
	let last = 0;
	async function open() {
		await fetch('/refresh');
		const es = new EventSource(%q + '/v1/topics/' + %q + '/events?after=' + last, {withCredentials: true});
		es.addEventListener('item', e => { last = JSON.parse(e.data).seq; st.got.push(last); });
		es.addEventListener('auth', () => { es.close(); st.auths++; open(); });
		es.onerror = () => { es.close(); setTimeout(open, 100); };
	}
	await open();
	return true;
})()`, n.URL(), topic)
			if _, err := browser.Eval[bool](ctx, evalWait, js); err != nil {
				t.Fatal(err)
			}
			poll.True(t, 30*time.Second, "two auth events", func() bool {
				n, err := browser.Eval[int](ctx, evalWait, `window.sub.auths`)
				return err == nil && n >= 2
			})
			got, acked := pageGotEvery(t, ctx, src)
			t.Logf("the page received %d items (%d acknowledged) with %d tokens", len(got), len(acked), refreshes.Load())
		})
	}
}
