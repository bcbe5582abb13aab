package redis_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/redistest"
	"github.com/baton-pub/baton/redis"
)

// gate holds every pipeline that carries a command named cmd until
// opened, and counts them. Others pass: a connection the pool dials
// meanwhile sends its own set-up pipeline (CLIENT SETINFO), which held
// would never let its sender through.
type gate struct {
	cmd       string
	open      chan struct{}
	held      atomic.Int64 // commands of the pipelines waiting at the gate
	pipelines atomic.Int64
}

func (*gate) DialHook(next goredis.DialHook) goredis.DialHook          { return next }
func (*gate) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook { return next }
func (g *gate) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		if !slices.ContainsFunc(cmds, func(c goredis.Cmder) bool { return c.Name() == g.cmd }) {
			return next(ctx, cmds)
		}
		g.pipelines.Add(1)
		g.held.Add(int64(len(cmds)))
		<-g.open
		return next(ctx, cmds)
	}
}

// TestBatchesConcurrentCalls: calls made while every sender is busy go out
// together, each with its own reply, a caller that gives up does not wait
// for the batch, and a node lease renewal is never batched.
func TestBatchesConcurrentCalls(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	// The replication watch's first check runs a script through the
	// batcher a second after Open: on a loaded machine it landed among the
	// gated calls, one call more than the test counts.
	s := open(t, srv.URL(0), redis.Options{ReplicationCheck: time.Hour})
	ctx := t.Context()
	const topics = 300
	for i := range topics {
		if _, err := s.Append(ctx, fmt.Sprintf("b%d", i), updates(t, 1+i%5)); err != nil {
			t.Fatal(err)
		}
	}
	nl, err := s.AcquireNode(ctx, "batch-node", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{cmd: "sismember", open: make(chan struct{})} // Topic's
	s.Client().AddHook(g)
	opened := false
	defer func() {
		if !opened {
			close(g.open)
		}
	}()

	// Every sender held at the gate with one call, the others queued.
	var wg sync.WaitGroup
	infos := make([]baton.TopicInfo, topics)
	errs := make([]error, topics)
	for i := range topics {
		wg.Go(func() { infos[i], errs[i] = s.Topic(ctx, fmt.Sprintf("b%d", i)) })
	}
	// Topic is two commands a call.
	poll.Until(t, 10*time.Second, "every call held or queued", func() error {
		p, h, q := g.pipelines.Load(), g.held.Load(), redis.Queued(s)
		if p != redis.BatchSenders || h+2*q != 2*topics {
			return fmt.Errorf("%d pipelines held with %d commands, %d calls queued", p, h, q)
		}
		return nil
	})

	// A node lease renewal does not wait behind the batches.
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	if _, err := s.RenewNode(rctx, nl, time.Minute); err != nil {
		t.Errorf("RenewNode while every sender is busy: %v", err)
	}
	rcancel()

	// A caller that gives up returns while its call waits.
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Cursor(gone, "b0"); !errors.Is(err, baton.ErrUnavailable) {
		t.Errorf("Cursor with a context ended: %v, want ErrUnavailable", err)
	}

	close(g.open)
	opened = true
	wg.Wait()
	for i := range topics {
		if errs[i] != nil {
			t.Fatalf("Topic(b%d): %v", i, errs[i])
		}
		if want := uint64(1 + i%5); infos[i].LastSeq != want || infos[i].Topic != fmt.Sprintf("b%d", i) {
			t.Fatalf("Topic(b%d) = %+v, want last seq %d", i, infos[i], want)
		}
	}
	// The held senders' pipelines, then at most one more batch each.
	if n := g.pipelines.Load(); n > 2*redis.BatchSenders {
		t.Errorf("%d calls went out in %d pipelines, want at most %d", topics, n, 2*redis.BatchSenders)
	}
}
