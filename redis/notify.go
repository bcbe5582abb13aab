package redis

import (
	"context"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/baton-pub/baton"
)

// The notifier. Each Store holds one pub/sub connection, subscribed to
//
//	PREFIX:{*}:events            (pattern) what the scripts publish per topic
//	PREFIX:topics                a topic's name when it first appears
//	PREFIX:nodes                 a node lease began or ended, with the topics
//	                             whose leases ended with it
//	__keyevent@DB__:expired      expired keys: a node lease's ttl key
//
// and fans the messages out in-process through a signal.Hub. Pub/sub drops
// messages while disconnected, so after every (re)subscription every
// subscription is woken: subscribers re-read the state they care about.
// Nothing above the store polls an idle topic, so this wake-up is what
// stands in for the messages missed meanwhile (TestResubscribe).
//
// Goroutines: listen runs alone and owns the PubSub between its creation and
// its Close; Close may close it concurrently (under psMu) to unblock a read.

// pingEvery is how long the pub/sub connection may stay silent before the
// listener pings it; a second silence of that length means it is dead.
const pingEvery = 15 * time.Second

// subscribe opens the pub/sub connection and waits until the server has
// confirmed all the subscriptions. On Redis Cluster a PUBLISH reaches every
// node, so one connection to any node hears every channel; keyspace events
// do not (each server raises its own), so the expired-key channel is left
// out there (doc.go, "Cluster").
func (s *Store) subscribe(ctx context.Context) (*goredis.PubSub, error) {
	cctx, cancel := context.WithTimeout(ctx, s.opts.DialTimeout+s.opts.ReadTimeout)
	defer cancel()
	ps := s.rdb.Subscribe(cctx)
	patterns := []string{s.k.eventsPattern(), s.k.expiredChannel()}
	if s.k.cluster() {
		patterns = patterns[:1]
	}
	err := ps.PSubscribe(cctx, patterns...)
	if err == nil {
		err = ps.Subscribe(cctx, s.k.topicsChannel(), s.k.nodesChannel())
	}
	for confirmed := 0; err == nil && confirmed < len(patterns)+2; {
		var msg any
		msg, err = ps.ReceiveTimeout(cctx, s.opts.DialTimeout+s.opts.ReadTimeout)
		if sub, ok := msg.(*goredis.Subscription); ok && (sub.Kind == "subscribe" || sub.Kind == "psubscribe") {
			confirmed++
		}
	}
	if err != nil {
		_ = ps.Close()
		return nil, err
	}
	return ps, nil
}

// listen receives change messages until ctx is done, re-subscribing after
// any failure with a capped backoff.
func (s *Store) listen(ctx context.Context, ps *goredis.PubSub) {
	var mu sync.Mutex // guards cur against Close's stop
	cur := ps
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if cur != nil {
			_ = cur.Close() // unblocks a pending read
		}
	})
	defer stop()
	backoff := 50 * time.Millisecond
	pinged := false
	for {
		if ps == nil {
			var err error
			ps, err = s.subscribe(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				s.log.Warn("redis pub/sub: cannot subscribe; retrying", "err", err, "in", backoff)
				if !sleep(ctx, backoff) {
					return
				}
				backoff = min(2*backoff, 2*time.Second)
				continue
			}
			mu.Lock()
			if ctx.Err() != nil {
				mu.Unlock()
				_ = ps.Close()
				return
			}
			cur = ps
			mu.Unlock()
			s.notify.set(false)
			s.log.Info("redis pub/sub: subscribed again; waking every subscription")
			s.recent.reset()
			s.locks.Reset()
			s.sig.NotifyAll()
			backoff, pinged = 50*time.Millisecond, false
		}
		msg, err := ps.ReceiveTimeout(ctx, pingEvery)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if isTimeout(err) && !pinged {
				// Silence: make the connection prove it is alive.
				pinged = true
				if perr := ps.Ping(ctx); perr == nil {
					continue
				}
			}
			s.log.Warn("redis pub/sub: connection lost; subscribing again", "err", err)
			s.notify.set(true)
			mu.Lock()
			cur = nil
			mu.Unlock()
			_ = ps.Close()
			ps = nil
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *goredis.Message:
			s.dispatch(ctx, m)
		case *goredis.Subscription:
			// go-redis re-subscribed on a new connection by itself:
			// messages may have been missed meanwhile.
			s.recent.reset()
			s.locks.Reset()
			s.sig.NotifyAll()
		}
	}
}

// dispatch turns one pub/sub message into local signals.
func (s *Store) dispatch(ctx context.Context, m *goredis.Message) {
	switch {
	case m.Channel == s.k.topicsChannel():
		if baton.ValidTopic(m.Payload) == nil {
			s.sig.Notify(m.Payload, baton.SignalTopic)
		}
	case m.Channel == s.k.nodesChannel():
		// "<acquired|ended> <epoch> <topic,topic,...> <node>" (lua/lib.lua,
		// publish_node): one message for up to 1000 topics.
		s.sig.Notify("", baton.SignalNode)
		_, rest, _ := strings.Cut(m.Payload, " ")
		_, rest, _ = strings.Cut(rest, " ")
		topics, _, _ := strings.Cut(rest, " ")
		if topics != "" {
			s.nodeEnded(strings.Split(topics, ","))
		}
	case m.Channel == s.k.expiredChannel():
		if node, ok := s.k.nodeOfTTL(m.Payload); ok {
			s.nodeLapsed(ctx, node)
		}
	default:
		t, ok := s.k.topicOf(m.Channel, "events")
		if !ok {
			return
		}
		kind, rest, _ := strings.Cut(m.Payload, " ")
		switch kind {
		case "append":
			// "append <seq> <origin>": this Store's own appends were
			// signalled when their script returned.
			if _, origin, _ := strings.Cut(rest, " "); origin == s.origin {
				return
			}
			s.sig.Notify(t, baton.SignalAppend)
		case "commit":
			s.recent.heardCommit(t, rest)
			s.sig.Notify(t, baton.SignalCommit)
		case "lock":
			s.locks.heard(t, rest)
			s.countsChanged()
			s.sig.Notify(t, baton.SignalLock)
		case "checkpoint":
			s.sig.Notify(t, baton.SignalCheckpoint)
		case "deleted":
			s.deleted(t)
		}
	}
}

// nodeLapsed wakes the standbys when a node lease's ttl key expired: the
// SignalNode subscribers at once, and the SignalLock subscribers of every
// topic under it once the set of its topics is read (one SMEMBERS per lapse,
// off the listener's goroutine). Nothing is written: the first standby to
// call ExpireNode (or Acquire) writes the records.
func (s *Store) nodeLapsed(ctx context.Context, node string) {
	s.sig.Notify("", baton.SignalNode)
	s.wg.Add(1) // listen is running, so the group is not waited on empty
	go func() {
		defer s.wg.Done()
		topics, err := s.rdb.SMembers(ctx, s.k.nodeTopics(node)).Result()
		if err != nil {
			s.log.Warn("redis: read the topics of a lapsed node lease", "node", node, "err", err)
			return
		}
		s.nodeEnded(topics)
	}()
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
