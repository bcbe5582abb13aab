// Command peerbench is `baton bench --peers`' driver: it starts one peer's
// servers (NATS JetStream, Centrifugo) and measures them with the bench's
// own load generator (package bench), so that item size, terminals and
// open-loop schedule are Baton's. It lives in the separate module
// bench/peers so that the peers' code stays out of the baton binary; the
// bench builds it on demand with `go build`.
//
// Protocol: a bench.PeerRequest as JSON on standard input; a
// bench.PeerResult as JSON on standard output; progress lines on standard
// error. It exits 0 when it wrote a result (failures are in it), 2 when the
// request is bad.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/baton-pub/baton/bench"
)

// system is a peer's running servers.
type system interface {
	bench.PeerSystem
	close()
}

// starters start each peer's servers; they fill res's version and config.
var starters = map[string]func(ctx context.Context, req bench.PeerRequest, res *bench.PeerResult, logf func(string, ...any)) (system, error){
	"nats":         startNATS,
	"nats-r3":      startNATSR3,
	"centrifugo":   startCentrifugo,
	"centrifugo-3": startCentrifugo3,
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	res, err := run(ctx, os.Stdin, logf)
	if err != nil {
		fmt.Fprintln(os.Stderr, "peerbench:", err)
		os.Exit(2)
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "peerbench: write result:", err)
		os.Exit(1)
	}
}

// run reads the request, runs the peer and returns its result; an error
// only for a bad request.
func run(ctx context.Context, in io.Reader, logf func(string, ...any)) (*bench.PeerResult, error) {
	var req bench.PeerRequest
	if err := json.NewDecoder(io.LimitReader(in, 1<<20)).Decode(&req); err != nil {
		return nil, fmt.Errorf("read request: %w", err)
	}
	start, ok := starters[req.Peer]
	if !ok {
		return nil, fmt.Errorf("unknown peer %q", req.Peer)
	}
	if req.Dir == "" || req.ItemSize <= 0 || req.Sources <= 0 {
		return nil, fmt.Errorf("request needs dir, item_size and sources")
	}
	res := &bench.PeerResult{Peer: req.Peer}
	sys, err := start(ctx, req, res, logf)
	if err != nil {
		res.Failures = append(res.Failures, fmt.Sprintf("start %s: %v", req.Peer, err))
		return res, nil
	}
	defer sys.close()
	bench.RunPeer(ctx, req, sys, res, logf)
	return res, nil
}
