package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/baton-pub/baton/bench"
)

// cfSys is Centrifugo with the Redis engine, against a redis-server the
// driver starts as the bench starts its own: one node (the centrifugo
// peer) or three sharing that Redis (centrifugo-3, as one runs it for high
// availability beside Baton's three nodes).
type cfSys struct {
	dir, bin  string
	confs     []string // each node's config file
	srvs      []*server
	stopRedis func()
	bases     []string // each node's base URL
	hc        *http.Client
}

// boot starts the Centrifugo processes afresh (Redis stays) and waits until
// they listen.
func (s *cfSys) boot() error {
	s.kill()
	for i, conf := range s.confs {
		name := cfName(i, len(s.confs))
		srv, err := startServer(s.dir, name, s.bin, "--config", conf)
		if err != nil {
			return err
		}
		s.srvs = append(s.srvs, srv)
		if err := waitPort(strings.TrimPrefix(s.bases[i], "http://"), 15*time.Second); err != nil {
			return fmt.Errorf("%w; see %s", err, filepath.Join(s.dir, name+".log"))
		}
	}
	return nil
}

// cfName names node i of n (its log file): centrifugo alone, centrifugo-N
// of three.
func cfName(i, n int) string {
	if n == 1 {
		return "centrifugo"
	}
	return "centrifugo-" + strconv.Itoa(i+1)
}

func (s *cfSys) kill() {
	for _, srv := range s.srvs {
		srv.kill()
	}
	s.srvs = nil
}

// The API key and the HMAC secret of connection tokens: loopback only, for
// one run.
const (
	cfAPIKey = "peerbench-api-key"
	cfSecret = "peerbench-token-secret"
)

// cfConf is Centrifugo's configuration file (v6 format); everything not
// written here is Centrifugo's default.
func cfConf(port int, redisAddr string) string {
	return fmt.Sprintf(`{
  "http_server": {"address": "127.0.0.1", "port": %d},
  "log": {"level": "error"},
  "usage_stats": {"disabled": true},
  "engine": {"type": "redis", "redis": {"address": ["redis://%s"]}},
  "http_api": {"key": %q},
  "client": {"token": {"hmac_secret_key": %q}},
  "uni_sse": {"enabled": true},
  "channel": {"without_namespace": {"history_size": 1000, "history_ttl": "300s"}}
}
`, port, redisAddr, cfAPIKey, cfSecret)
}

func startCentrifugo(ctx context.Context, req bench.PeerRequest, res *bench.PeerResult, logf func(string, ...any)) (system, error) {
	return startCentrifugoN(ctx, 1, req, res, logf)
}

// startCentrifugo3 is the centrifugo-3 peer: three nodes on one Redis.
func startCentrifugo3(ctx context.Context, req bench.PeerRequest, res *bench.PeerResult, logf func(string, ...any)) (system, error) {
	return startCentrifugoN(ctx, 3, req, res, logf)
}

func startCentrifugoN(ctx context.Context, n int, req bench.PeerRequest, res *bench.PeerResult, logf func(string, ...any)) (system, error) {
	bin := req.Bins["centrifugo"]
	if bin == "" {
		return nil, errors.New("no centrifugo binary in the request")
	}
	raddr, stopRedis, err := bench.StartRedis(ctx, filepath.Join(req.Dir, "redis"), logf)
	if err != nil {
		return nil, err
	}
	s := &cfSys{dir: req.Dir, bin: bin, stopRedis: stopRedis, hc: &http.Client{Transport: &http.Transport{
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext, MaxIdleConnsPerHost: 64, DisableCompression: true}, Timeout: 30 * time.Second}}
	var conf string
	for i := range n {
		port, err := bench.FreePort()
		if err != nil {
			s.close()
			return nil, err
		}
		c := cfConf(port, raddr)
		if i == 0 {
			conf = c
		}
		cf := filepath.Join(req.Dir, cfName(i, n)+".json")
		if err := os.WriteFile(cf, []byte(c), 0o640); err != nil {
			s.close()
			return nil, err
		}
		s.confs = append(s.confs, cf)
		s.bases = append(s.bases, "http://127.0.0.1:"+strconv.Itoa(port))
	}
	if err := s.boot(); err != nil {
		s.close()
		return nil, err
	}
	res.Version = "centrifugo " + modVersion(bin)
	if n == 1 {
		res.Config = append(res.Config,
			"centrifugo --config centrifugo.json (one node, built with go install from the Go module proxy at the version bench/peers.go pins)",
			"centrifugo.json:\n"+conf)
	} else {
		res.Version += ", three nodes on one Redis"
		res.Config = append(res.Config,
			"three centrifugo --config centrifugo-N.json on one Redis (built with go install from the Go module proxy at the version bench/peers.go pins)",
			"centrifugo-1.json (the others differ in the port):\n"+conf)
	}
	res.Config = append(res.Config,
		"redis-server: as Baton's (append-only file, fsync every second), on loopback",
		"publish: the HTTP API, /api/publish for batch 1 and /api/batch of publish commands for batches of 10 and 100, each publish with an idempotency_key (the item's msg_id)",
	)
	res.Notes = append(res.Notes,
		"terminals: the uni-directional SSE transport (/connection/uni_sse), each with a connection token whose channels claim subscribes it server-side",
		"Centrifugo has no leader fail-over: a node holds no lease; any node publishes through Redis, and ordering is Redis's",
		"history (1000 items, 300 s) is kept in Redis, so a terminal could recover a gap; the bench's terminals do not ask",
	)
	if n > 1 {
		res.Notes = append(res.Notes,
			"centrifugo-3 is Centrifugo run for high availability, as Baton's three nodes are: the sources and the terminals are spread over the three nodes, each publish reaches the other nodes' terminals through Redis pub/sub; it runs ingest and latency (its fan-out to one node would be the centrifugo peer's again)")
	}
	logf("%s: %s on %s, Redis engine on %s", req.Peer, res.Version, strings.Join(s.bases, ","), raddr)
	return s, nil
}

// modVersion is the main module's version a Go binary carries.
func modVersion(bin string) string {
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		return "(unknown version)"
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == "mod" {
			return f[2]
		}
	}
	return "(unknown version)"
}

func (s *cfSys) close() {
	s.kill()
	s.stopRedis()
}

func (s *cfSys) Failover(context.Context, int, string) (*bench.PeerFailover, error) {
	return &bench.PeerFailover{Kind: "none", Note: "Centrifugo has no leader fail-over: no node leads a channel (publishes go through Redis from any node)"}, nil
}

// Topic is channel bench-NAME; Centrifugo has one kind of terminal. Sender
// i publishes to node i (of three senders) and terminal i reads from node
// i, each modulo the nodes. For fan-out the node is started afresh
// (PeerSystem); centrifugo-3 does not run fan-out.
func (s *cfSys) Topic(ctx context.Context, name string, n int, fanout bool) (*bench.PeerTopic, error) {
	if fanout {
		if len(s.srvs) > 1 {
			return nil, errors.New("centrifugo-3 does not run fan-out (one node's would be the centrifugo peer's)")
		}
		if err := s.boot(); err != nil {
			return nil, fmt.Errorf("restart centrifugo: %w", err)
		}
	}
	ch := "bench-" + name
	t := &bench.PeerTopic{PID: s.srvs[0].pid(), Close: func() {}}
	for i := range 3 {
		t.Senders = append(t.Senders, &cfSender{hc: s.hc, base: s.bases[i%len(s.bases)], ch: ch})
	}
	t.Subscribe = func(ctx context.Context, i int, connected func(), fn func([]byte)) error {
		return s.terminal(ctx, s.bases[i%len(s.bases)], ch, i, connected, fn)
	}
	return t, nil
}

// token is an HS256 connection token for user "tI" subscribed to ch.
func token(ch string, i int) string {
	enc := base64.RawURLEncoding
	h := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	c, _ := json.Marshal(map[string]any{"sub": "t" + strconv.Itoa(i), "channels": []string{ch}, "exp": time.Now().Add(time.Hour).Unix()})
	msg := h + "." + enc.EncodeToString(c)
	m := hmac.New(sha256.New, []byte(cfSecret))
	m.Write([]byte(msg))
	return msg + "." + enc.EncodeToString(m.Sum(nil))
}

// terminal reads the uni-directional SSE stream of a connection subscribed
// to ch. Centrifugo subscribes it before it writes the connect reply, the
// stream's first bytes, so the terminal is connected then; the reply
// itself carries no due time, so the terminals do not count it (sentAt).
func (s *cfSys) terminal(ctx context.Context, base, ch string, i int, connected func(), fn func([]byte)) error {
	q := url.Values{"cf_connect": {`{"token":"` + token(ch, i) + `"}`}}
	return bench.StreamSSE(ctx, termClient, base, "/connection/uni_sse?"+q.Encode(), connected, fn)
}

// termClient holds the terminals' connections, one each.
var termClient = &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	MaxIdleConnsPerHost: 1, DisableCompression: true}}

// cfSender publishes over the HTTP API, each item with its msg_id as
// idempotency key.
type cfSender struct {
	hc       *http.Client
	base, ch string
}

func (s *cfSender) Send(ctx context.Context, b bench.Batch) error {
	var body []byte
	path := "/api/publish"
	pub := func(dst []byte, i int) []byte {
		dst = append(dst, `{"channel":"`...)
		dst = append(dst, s.ch...)
		dst = append(dst, `","idempotency_key":"`...)
		dst = b.AppendMsgID(dst, i)
		dst = append(dst, `","data":`...)
		dst = b.AppendItem(dst, i)
		return append(dst, '}')
	}
	if b.Len() == 1 {
		body = pub(make([]byte, 0, len(b.Pad)+160), 0)
	} else {
		path = "/api/batch"
		body = append(make([]byte, 0, b.Len()*(len(b.Pad)+180)+16), `{"commands":[`...)
		for i := range b.Len() {
			if i > 0 {
				body = append(body, ',')
			}
			body = append(body, `{"publish":`...)
			body = append(pub(body, i), '}')
		}
		body = append(body, "]}"...)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", cfAPIKey)
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || bytes.Contains(rb, []byte(`"error"`)) {
		return fmt.Errorf("publish: %s: %.200s", resp.Status, rb)
	}
	return nil
}
