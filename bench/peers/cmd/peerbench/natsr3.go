package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/baton-pub/baton/bench"
)

// natsR3 is the nats-r3 peer: NATS JetStream as one would run it for high
// availability, three nats-servers in one cluster with one R3 file stream
// per topic, as Baton's ingest and latency run on three nodes. A publish
// is acknowledged once a majority of the three has it. It runs ingest and
// latency only: its fan-out would be the nats peer's core subscriptions
// again, and its leader fail-over is the nats peer's (natsfailover.go).
type natsR3 struct {
	req  bench.PeerRequest
	logf func(string, ...any)
	c    *natsCluster
	nc   *nats.Conn // the driver's own: streams
	js   nats.JetStreamContext
}

func startNATSR3(ctx context.Context, req bench.PeerRequest, res *bench.PeerResult, logf func(string, ...any)) (system, error) {
	bin := req.Bins["nats-server"]
	if bin == "" {
		return nil, errors.New("no nats-server binary in the request")
	}
	c, conf, err := startNATSCluster(req.Dir, bin, "r3")
	if err != nil {
		return nil, err
	}
	s := &natsR3{req: req, logf: logf, c: c}
	if s.nc, err = nats.Connect(strings.Join(c.urls, ","), nats.Name("peerbench")); err != nil {
		s.close()
		return nil, err
	}
	if s.js, err = s.nc.JetStream(nats.PublishAsyncMaxPending(1 << 16)); err != nil {
		s.close()
		return nil, err
	}
	res.Version = "nats-server " + s.nc.ConnectedServerVersion() + ", nats.go " + nats.Version + ", three servers in one cluster"
	res.Config = append(res.Config,
		"three nats-server -c r3-N.conf in one cluster (built from the Go module proxy at the version in bench/peers/go.mod)",
		"r3-1.conf (the others differ in ports, names and store directories):\n"+conf,
		"streams: one per topic, subject bench.TOPIC, file storage, 3 replicas (a publish is acknowledged once two of the three have it), duplicate window 2m (nats-server's default)",
		"publish: JetStream publish with a Nats-Msg-Id header (the item's msg_id) on 3 connections, one to each server (as Baton's sources are spread over its 3 nodes); batch 1 is a synchronous publish, batches of 10 and 100 are asynchronous publishes awaited together",
	)
	res.Notes = append(res.Notes,
		"nats-r3 is NATS run for high availability, as Baton's three nodes are; it runs ingest and latency (its fan-out would be the nats peer's core subscriptions again, and the nats peer measures its leader fail-over)",
		"terminals: JetStream ordered push consumers (deliver new), each on its own connection, spread over the three servers",
		"a file store syncs to disk every 2 minutes by default (sync_interval), not on every publish",
	)
	logf("nats-r3: %s on %s", res.Version, strings.Join(c.urls, ","))
	return s, nil
}

func (s *natsR3) close() {
	if s.nc != nil {
		s.nc.Close()
		s.nc = nil
	}
	s.c.close()
}

// Topic makes the R3 stream B-NAME on subject bench.NAME and waits until
// every replica is current.
func (s *natsR3) Topic(ctx context.Context, name string, n int, fanout bool) (*bench.PeerTopic, error) {
	if fanout {
		return nil, errors.New("nats-r3 does not run fan-out (the nats peer's core subscriptions are the same)")
	}
	stream, subj := "B-"+name, "bench."+name
	if err := addClusterStream(ctx, s.js, &nats.StreamConfig{Name: stream, Subjects: []string{subj}, Storage: nats.FileStorage,
		Replicas: 3, Duplicates: 2 * time.Minute}); err != nil {
		return nil, err
	}
	t := &bench.PeerTopic{PID: s.c.srvs[0].pid()}
	conns, senders, err := natsSenders(s.c.urls, subj)
	if err != nil {
		return nil, err
	}
	t.Senders = senders
	t.Subscribe = func(ctx context.Context, i int, connected func(), fn func([]byte)) error {
		return natsTerminal(ctx, s.c.urls[i%len(s.c.urls)], subj, false, connected, fn)
	}
	t.Close = func() {
		closeAll(conns)
		_ = s.js.DeleteStream(stream)
	}
	return t, nil
}

// Failover: the nats peer measures the R3 leader fail-over; nats-r3 is not
// asked (bench.PeerScenarios).
func (s *natsR3) Failover(context.Context, int, string) (*bench.PeerFailover, error) {
	return nil, fmt.Errorf("nats-r3 does not run the fail-over: the nats peer measures the R3 stream leader's")
}
