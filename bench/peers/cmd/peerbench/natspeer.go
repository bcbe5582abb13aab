package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/baton-pub/baton/bench"
)

// natsSys is one nats-server with JetStream on a file store (R1) for
// ingest, latency and fan-out; the fail-over runs its own cluster of three
// (natsfailover.go).
type natsSys struct {
	req              bench.PeerRequest
	logf             func(string, ...any)
	bin, conf, store string // the binary, its config file, its store directory
	srv              *server
	url              string
	nc               *nats.Conn // the driver's own: streams
	js               nats.JetStreamContext
}

// boot starts the server afresh (a new process, an empty store) and
// connects the driver's own client to it.
func (s *natsSys) boot() error {
	s.close()
	if err := os.RemoveAll(s.store); err != nil {
		return err
	}
	srv, err := startServer(s.req.Dir, "nats-server", s.bin, "-c", s.conf)
	if err != nil {
		return err
	}
	s.srv = srv
	if err := waitPort(strings.TrimPrefix(s.url, "nats://"), 15*time.Second); err != nil {
		return err
	}
	if s.nc, err = nats.Connect(s.url, nats.Name("peerbench")); err != nil {
		return err
	}
	s.js, err = s.nc.JetStream(nats.PublishAsyncMaxPending(1 << 16))
	return err
}

// natsConf is the server's configuration file: everything not written
// here is nats-server's default (a file store syncs to disk every two
// minutes unless sync_interval says otherwise; the duplicate window of a
// stream is two minutes).
func natsConf(port int, storeDir string) string {
	return fmt.Sprintf("listen: 127.0.0.1:%d\nserver_name: bench-1\nmax_payload: 1MB\njetstream {\n  store_dir: %q\n}\n", port, storeDir)
}

func startNATS(ctx context.Context, req bench.PeerRequest, res *bench.PeerResult, logf func(string, ...any)) (system, error) {
	bin := req.Bins["nats-server"]
	if bin == "" {
		return nil, errors.New("no nats-server binary in the request")
	}
	port, err := bench.FreePort()
	if err != nil {
		return nil, err
	}
	conf := natsConf(port, filepath.Join(req.Dir, "js"))
	cf := filepath.Join(req.Dir, "nats.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o640); err != nil {
		return nil, err
	}
	s := &natsSys{req: req, logf: logf, bin: bin, conf: cf, store: filepath.Join(req.Dir, "js"),
		url: "nats://127.0.0.1:" + strconv.Itoa(port)}
	if err := s.boot(); err != nil {
		s.close()
		return nil, err
	}
	res.Version = "nats-server " + s.nc.ConnectedServerVersion() + ", nats.go " + nats.Version
	res.Config = append(res.Config,
		"nats-server -c nats.conf (one server, built from the Go module proxy at the version in bench/peers/go.mod)",
		"nats.conf:\n"+conf,
		"streams: one per topic, subject bench.TOPIC, file storage, 1 replica, duplicate window 2m (nats-server's default)",
		"publish: JetStream publish with a Nats-Msg-Id header (the item's msg_id) on 3 connections; batch 1 is a synchronous publish, batches of 10 and 100 are asynchronous publishes awaited together",
	)
	res.Notes = append(res.Notes,
		"latency and ingest terminals: JetStream ordered push consumers (deliver new), each on its own connection: they resume after a gap, as Baton's terminals do",
		"fan-out terminals: core NATS subscriptions to the stream's subject, each on its own connection: the fastest NATS delivery, with no resume (a slow subscriber loses messages)",
		"a file store syncs to disk every 2 minutes by default (sync_interval), not on every publish: Baton on Redis (appendfsync everysec) is the closer comparison",
	)
	logf("nats: %s on %s", res.Version, s.url)
	return s, nil
}

func (s *natsSys) close() {
	if s.nc != nil {
		s.nc.Close()
		s.nc = nil
	}
	if s.srv != nil {
		s.srv.kill()
		s.srv = nil
	}
}

// Topic makes stream B-NAME on subject bench.NAME; for fan-out, on a
// server started afresh (PeerSystem).
func (s *natsSys) Topic(ctx context.Context, name string, n int, fanout bool) (*bench.PeerTopic, error) {
	if fanout {
		if err := s.boot(); err != nil {
			return nil, fmt.Errorf("restart nats-server: %w", err)
		}
	}
	stream, subj := "B-"+name, "bench."+name
	if _, err := s.js.AddStream(&nats.StreamConfig{Name: stream, Subjects: []string{subj}, Storage: nats.FileStorage,
		Replicas: 1, Duplicates: 2 * time.Minute}, nats.Context(ctx)); err != nil {
		return nil, fmt.Errorf("add stream %s: %w", stream, err)
	}
	t := &bench.PeerTopic{PID: s.srv.pid()}
	conns, senders, err := natsSenders([]string{s.url, s.url, s.url}, subj)
	if err != nil {
		return nil, err
	}
	t.Senders = senders
	t.Subscribe = func(ctx context.Context, i int, connected func(), fn func([]byte)) error {
		return natsTerminal(ctx, s.url, subj, fanout, connected, fn)
	}
	t.Close = func() {
		closeAll(conns)
		_ = s.js.DeleteStream(stream)
	}
	return t, nil
}

// natsSenders connects a publisher to each of urls and returns the
// connections and their senders on subj (3 connections, as Baton's sources
// are spread over its 3 nodes).
func natsSenders(urls []string, subj string) ([]*nats.Conn, []bench.Sender, error) {
	var conns []*nats.Conn
	var senders []bench.Sender
	for _, url := range urls {
		nc, err := nats.Connect(url, nats.Name("peerbench-publisher"))
		if err != nil {
			closeAll(conns)
			return nil, nil, err
		}
		js, err := nc.JetStream(nats.PublishAsyncMaxPending(1 << 16))
		if err != nil {
			nc.Close()
			closeAll(conns)
			return nil, nil, err
		}
		conns = append(conns, nc)
		senders = append(senders, &natsSender{js: js, subj: subj})
	}
	return conns, senders, nil
}

func closeAll(conns []*nats.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// natsTerminal is one terminal on its own connection: a core subscription
// (fan-out) or a JetStream ordered push consumer delivering new messages.
func natsTerminal(ctx context.Context, url, subj string, core bool, connected func(), fn func([]byte)) error {
	closed := make(chan struct{})
	nc, err := nats.Connect(url, nats.Name("peerbench-terminal"), nats.NoReconnect(),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if err != nil {
		return err
	}
	defer nc.Close()
	cb := func(m *nats.Msg) { fn(m.Data) }
	var sub *nats.Subscription
	if core {
		sub, err = nc.Subscribe(subj, cb)
		if err == nil {
			// Unlimited pending: a slow terminal shows as latency, not loss.
			_ = sub.SetPendingLimits(-1, -1)
			err = nc.Flush() // the server has the subscription
		}
	} else {
		var js nats.JetStreamContext
		if js, err = nc.JetStream(); err == nil {
			sub, err = js.Subscribe(subj, cb, nats.OrderedConsumer(), nats.DeliverNew())
		}
	}
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", subj, err)
	}
	connected()
	select {
	case <-ctx.Done():
		_ = sub.Unsubscribe()
		return nil
	case <-closed:
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("connection closed: %v", nc.LastError())
	}
}

// natsSender publishes each item as a JetStream message with its msg_id as
// Nats-Msg-Id, so that the stream drops a repeat (dedup).
type natsSender struct {
	js   nats.JetStreamContext
	subj string
}

func (s *natsSender) msg(b bench.Batch, i int) *nats.Msg {
	m := nats.NewMsg(s.subj)
	m.Data = b.AppendItem(make([]byte, 0, len(b.Pad)+64), i)
	m.Header.Set(nats.MsgIdHdr, string(b.AppendMsgID(nil, i)))
	return m
}

func (s *natsSender) Send(ctx context.Context, b bench.Batch) error {
	if b.Len() == 1 {
		_, err := s.js.PublishMsg(s.msg(b, 0), nats.Context(ctx))
		return err
	}
	futs := make([]nats.PubAckFuture, 0, b.Len())
	for i := range b.Len() {
		f, err := s.js.PublishMsgAsync(s.msg(b, i))
		if err != nil {
			return err
		}
		futs = append(futs, f)
	}
	var errs []string
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			errs = append(errs, err.Error())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d publishes failed: %s", len(errs), b.Len(), strings.Join(errs[:1], ""))
	}
	return nil
}
