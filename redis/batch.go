package redis

import (
	"context"
	"sync"
	"sync/atomic"

	goredis "github.com/redis/go-redis/v9"
)

// batcher sends the commands that callers send at the same moment in one
// round trip: a pipeline per batch. When a node takes over a crashed node's
// thousands of topics, each of its electors reads a lock and acquires it,
// each publisher reads where to resume and commits, each terminal's feed
// reads what was published, all at once: a round trip and two system calls
// per command would otherwise bound the hand-over (docs/benchmarks.md, ten
// thousand topics). A call that finds a sender idle goes out alone at once,
// so a lone call waits for nobody; calls that arrive while every sender is
// busy wait for the next free one and go out together.
//
// A batch is the same as its calls sent one by one on one connection: each
// command (and each script, atomically) reports its own reply or error, and
// a lost connection fails every call of the batch with ErrUnavailable, as
// it would have failed each alone (the caller knows whether a retry is
// safe). A caller whose context ends stops waiting and must not read its
// commands any more; a script may still run, as one whose reply was lost
// may.
type batcher struct {
	rdb   goredis.UniversalClient
	calls chan *call
	quit  chan struct{}
	wg    sync.WaitGroup
	// queued counts the calls waiting for a sender (for tests).
	queued atomic.Int64
}

// A call is the commands of one caller, sent in one batch.
type call struct {
	cmds []goredis.Cmder
	done chan struct{}
}

const (
	// batchSenders is how many batches may be in flight at once, each on
	// its own connection of the pool.
	batchSenders = 8
	// maxBatch bounds the commands of one pipeline, so that one batch
	// does not hold the replies of the others behind it for long.
	maxBatch = 512
)

func newBatcher(rdb goredis.UniversalClient) *batcher {
	b := &batcher{rdb: rdb, calls: make(chan *call), quit: make(chan struct{})}
	b.wg.Add(batchSenders)
	for range batchSenders {
		go func() {
			defer b.wg.Done()
			b.send()
		}()
	}
	return b
}

// stop tells the senders to stop taking calls; wait waits for the batches
// in flight (close the client between the two: they then fail at once).
// Both do nothing on a nil batcher (batching off).
func (b *batcher) stop() {
	if b != nil {
		close(b.quit)
	}
}

func (b *batcher) wait() {
	if b != nil {
		b.wg.Wait()
	}
}

// do sends cmds in a batch and waits for their replies: each cmd holds its
// own. It returns ctx's error if ctx ends first (cmds must then be left
// alone), and goredis.ErrClosed after stop.
func (b *batcher) do(ctx context.Context, cmds ...goredis.Cmder) error {
	c := &call{cmds: cmds, done: make(chan struct{})}
	b.queued.Add(1)
	select {
	case b.calls <- c:
	case <-ctx.Done():
		b.queued.Add(-1)
		return ctx.Err()
	case <-b.quit:
		b.queued.Add(-1)
		return goredis.ErrClosed
	}
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// scriptCall is one script to run with its keys and arguments.
type scriptCall struct {
	sc   *script
	keys []string
	args []any
}

// cmd is the call's EVALSHA.
func (c scriptCall) cmd(ctx context.Context) *goredis.Cmd {
	cmdArgs := make([]any, 0, 3+len(c.keys)+len(c.args))
	cmdArgs = append(cmdArgs, "evalsha", c.sc.Hash(), len(c.keys))
	for _, k := range c.keys {
		cmdArgs = append(cmdArgs, k)
	}
	cmdArgs = append(cmdArgs, c.args...)
	return goredis.NewCmd(ctx, cmdArgs...)
}

// run runs sc through a batch by SHA, and by its source if the server does
// not have it (a restart, a failover, SCRIPT FLUSH: it did not run).
func (b *batcher) run(ctx context.Context, sc *script, keys []string, args []any) (any, error) {
	r, err := b.runAll(ctx, scriptCall{sc, keys, args})
	if err != nil {
		return nil, err
	}
	return r[0].v, r[0].err
}

// scriptResult is one script's reply or error.
type scriptResult struct {
	v   any
	err error
}

// runAll runs the calls in one batch, in order, and returns each one's
// reply; a script the server did not have is run again by its source, in
// order. Another client's commands may run between two of them: each
// script checks what it relies on. The error is the batch's (ctx ended,
// the batcher stopped): the replies are then unknown.
func (b *batcher) runAll(ctx context.Context, calls ...scriptCall) ([]scriptResult, error) {
	cmds := make([]goredis.Cmder, len(calls))
	for i, c := range calls {
		cmds[i] = c.cmd(ctx)
	}
	if err := b.do(ctx, cmds...); err != nil {
		return nil, err
	}
	out := make([]scriptResult, len(calls))
	for i, c := range calls {
		v, err := cmds[i].(*goredis.Cmd).Result()
		if err != nil && goredis.HasErrorPrefix(err, "NOSCRIPT") {
			v, err = c.sc.Eval(ctx, b.rdb, c.keys, c.args...).Result()
		}
		out[i] = scriptResult{v, err}
	}
	return out, nil
}

// send takes a call, then every call already waiting (up to maxBatch
// commands), and sends them as one pipeline, until stop.
func (b *batcher) send() {
	batch := make([]*call, 0, 64)
	for {
		select {
		case c := <-b.calls:
			b.queued.Add(-1)
			batch = append(batch[:0], c)
		case <-b.quit:
			return
		}
		n := len(batch[0].cmds)
	more:
		for n < maxBatch {
			select {
			case c := <-b.calls:
				b.queued.Add(-1)
				batch = append(batch, c)
				n += len(c.cmds)
			default:
				break more
			}
		}
		b.exec(batch)
		clear(batch)
	}
}

// exec sends a batch. The pipeline's context is none of the callers': one
// caller giving up must not fail the others' commands; the client's read
// timeout bounds it.
func (b *batcher) exec(batch []*call) {
	ctx := context.Background()
	pipe := b.rdb.Pipeline()
	for _, c := range batch {
		for _, cmd := range c.cmds {
			_ = pipe.Process(ctx, cmd)
		}
	}
	_, _ = pipe.Exec(ctx)
	for _, c := range batch {
		close(c.done)
	}
}

// send sends the commands queued on pipe (not executed) in a batch. It
// returns the first error of any of them (goredis.Nil is none: a missing
// key); the commands hold their replies.
func (s *Store) send(ctx context.Context, pipe goredis.Pipeliner) error {
	cmds := pipe.Cmds()
	if s.batch == nil {
		_, _ = pipe.Exec(ctx)
	} else if err := s.batch.do(ctx, cmds...); err != nil {
		return err
	}
	return pipeErr(cmds)
}

// batched reports whether commands are batched: not behind Sentinel nor
// with wait_replicas. Through a failover, shared batches on connections to
// the demoted master made the Sentinel end-to-end test see a write that
// the failover lost delivered to terminals (integration,
// TestSentinelFailoverEndToEnd); each call on its own connection and
// context did not. Deployments that need a failover to lose nothing
// (wait_replicas) get the per-call path.
func batched(cfg Config, opts Options) bool { return !cfg.Sentinel && opts.WaitReplicas <= 0 }
