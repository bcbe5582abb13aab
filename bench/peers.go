package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/baton-pub/baton"
)

// centrifugoModule is the Centrifugo release the bench builds, with `go
// install` (its own go.mod, as a user would build it); nats-server's
// version is in bench/peers/go.mod, built with `go build` there.
const centrifugoModule = "github.com/centrifugal/centrifugo/v6@v6.9.1"

// validatePeers names the first unknown peer.
func validatePeers(peers []string) ([]string, error) {
	var out []string
	for _, s := range peers {
		for _, p := range strings.Split(s, ",") {
			p = strings.TrimSpace(p)
			switch {
			case p == "" || slices.Contains(out, p):
			case slices.Contains(Peers, p):
				out = append(out, p)
			default:
				return nil, baton.Invalidf("--peers", "unknown peer %q (want %s)", p, strings.Join(Peers, ","))
			}
		}
	}
	return out, nil
}

// peersDir finds the bench/peers module: BATON_BENCH_PEERS_DIR, or
// bench/peers under the working directory or one of its parents (a
// checkout of Baton).
func peersDir() (string, error) {
	if d := os.Getenv("BATON_BENCH_PEERS_DIR"); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "bench", "peers", "go.mod")); err == nil {
			return filepath.Join(d, "bench", "peers"), nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("the peers' driver module bench/peers was not found: run the bench from a checkout of Baton, or set BATON_BENCH_PEERS_DIR")
		}
	}
}

// peerBins builds the driver and the peer's server into the user's cache
// directory (`go build` and `go install` keep their own caches, so a
// second run only links) and returns their paths.
func peerBins(ctx context.Context, peer string, logf func(string, ...any)) (driver string, bins map[string]string, err error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", nil, errors.New("the peers are built from source: the Go toolchain must be on PATH")
	}
	src, err := peersDir()
	if err != nil {
		return "", nil, err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	out := filepath.Join(cache, "baton-bench-peers")
	if err := os.MkdirAll(out, 0o750); err != nil {
		return "", nil, err
	}
	build := func(what string, env []string, args ...string) error {
		t0 := time.Now()
		cmd := exec.CommandContext(ctx, goBin, args...)
		cmd.Dir, cmd.Env = src, append(os.Environ(), env...)
		b, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("cannot build %s (go %s in %s; the first build needs the Go module proxy): %w: %s",
				what, strings.Join(args, " "), src, err, tail(b, 800))
		}
		logf("built %s in %.1fs", what, time.Since(t0).Seconds())
		return nil
	}
	driver = filepath.Join(out, "peerbench")
	if err := build("the peers' driver", nil, "build", "-o", driver, "./cmd/peerbench"); err != nil {
		return "", nil, err
	}
	bins = map[string]string{}
	switch peer {
	case "nats", "nats-r3":
		bins["nats-server"] = filepath.Join(out, "nats-server")
		err = build("nats-server", nil, "build", "-o", bins["nats-server"], "github.com/nats-io/nats-server/v2")
	case "centrifugo", "centrifugo-3":
		bins["centrifugo"] = filepath.Join(out, "centrifugo")
		logf("building %s (the first build takes minutes)", centrifugoModule)
		err = build("centrifugo", []string{"GOBIN=" + out}, "install", centrifugoModule)
	}
	return driver, bins, err
}

// tail is the last n bytes of b, for an error message.
func tail(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// peerBuild is a peer's driver and servers, built once per run (or the
// error that stopped the build, reported once).
type peerBuild struct {
	driver   string
	bins     map[string]string
	err      error
	reported bool
}

// runPeer runs one scenario on a peer, right after Baton's (Run), so that
// the machine's load, which moves on a shared machine, is as close as it
// can be for both figures; it builds the peer on first use and merges the
// driver's answer into the report's entry for the peer.
func runPeer(ctx context.Context, e *env, r *Report, peer, scenario string) error {
	if e.peers == nil {
		e.peers = make(map[string]*peerBuild)
	}
	b := e.peers[peer]
	if b == nil {
		b = &peerBuild{}
		b.driver, b.bins, b.err = peerBins(ctx, peer, e.logf)
		e.peers[peer] = b
	}
	if b.err != nil {
		if b.reported {
			e.logf("%s: skipped (not built)", peer)
			return nil
		}
		b.reported = true
		return b.err
	}
	dir := filepath.Join(e.dir, "peer-"+peer+"-"+scenario)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	req := PeerRequest{Peer: peer, Scenarios: []string{scenario}, Quick: e.cfg.Quick, ItemSize: e.cfg.ItemSize, Sources: e.cfg.Sources,
		Faults: e.cfg.Faults, Dir: dir, Bins: b.bins}
	res, err := callDriver(ctx, b.driver, req, func(line string) { e.logf("%s", line) })
	if err != nil {
		return err
	}
	r.mergePeer(res)
	if len(res.Failures) > 0 {
		return errors.New(strings.Join(res.Failures, "; "))
	}
	return nil
}

// mergePeer adds one scenario's answer to the report's entry for its peer.
func (r *Report) mergePeer(res *PeerResult) {
	for i := range r.Peers {
		p := &r.Peers[i]
		if p.Peer != res.Peer {
			continue
		}
		p.Ingest = append(p.Ingest, res.Ingest...)
		p.Latency = append(p.Latency, res.Latency...)
		p.Fanout = append(p.Fanout, res.Fanout...)
		if res.Failover != nil {
			p.Failover = res.Failover
		}
		p.Failures = append(p.Failures, res.Failures...)
		return
	}
	r.Peers = append(r.Peers, *res)
}

// callDriver runs a driver: req as JSON on its standard input, its
// standard error line by line to progress, its result (at most
// maxDriverResult bytes) from standard output.
func callDriver(ctx context.Context, driver string, req PeerRequest, progress func(string)) (*PeerResult, error) {
	in, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, driver)
	cmd.Stdin = bytes.NewReader(in)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the peers' driver: %w", err)
	}
	lastc := make(chan string, 1)
	go func() {
		var last string
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			last = sc.Text()
			progress(last)
		}
		_, _ = io.Copy(io.Discard, stderr) // past a line too long to scan: the driver must not block on a full pipe
		lastc <- last
	}()
	out, rerr := io.ReadAll(io.LimitReader(stdout, maxDriverResult))
	_, _ = io.Copy(io.Discard, stdout)
	last := <-lastc // both pipes read to the end before Wait closes them
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("the peers' driver failed: %w: %s", err, last)
	}
	if rerr != nil {
		return nil, fmt.Errorf("read the peers' driver result: %w", rerr)
	}
	var res PeerResult
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("read the peers' driver result: %w", err)
	}
	if res.Peer != req.Peer {
		return nil, fmt.Errorf("the peers' driver answered for %q, not %q", res.Peer, req.Peer)
	}
	for i := range min(len(res.Latency), len(res.LatencyCurves)) {
		res.Latency[i].Terminal.Curve = res.LatencyCurves[i]
	}
	return &res, nil
}

// maxDriverResult bounds a driver's answer: a few rows and configuration
// files (tens of KiB).
const maxDriverResult = 16 << 20
