package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/checker"
	"github.com/baton-pub/baton/dial"
	"github.com/baton-pub/baton/internal/nemesis"
	"github.com/baton-pub/baton/wire"
)

// finish stops the sources, lets the terminals catch up, reads the
// hand-over records, checks, and verifies the ledger.
func (r *run) finish(ctx context.Context, plan []nemesis.Fault) *Report {
	rep := &Report{Seed: r.c.Seed, Replay: r.replay(), Store: dial.Redact(r.store), Engine: r.engine,
		Nodes: r.c.Nodes, Topics: r.topics, LeaseTTL: r.c.LeaseTTL.String(), Interval: r.c.Interval.String(),
		Schedule: plan, Faults: make(map[string]FaultCount)}
	for _, s := range r.srcs {
		if err := s.Stop(); err != nil {
			r.problem("source %s: %v", s.Name, err)
		}
		rep.Workload.Retries += s.Retries()
		rep.Workload.Resent += s.Resent()
		rep.Workload.LostAcks += s.LostAcks()
	}
	maxSeq := make(map[string]uint64)
	for _, a := range r.h.Acks() {
		maxSeq[a.Topic] = max(maxSeq[a.Topic], a.Seq)
	}
	r.logf("sources stopped; waiting up to %v for every terminal to receive every acknowledged item", r.c.Drain)
	deadline := time.Now().Add(r.c.Drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		behind := 0
		for _, t := range r.terms {
			if t.Last() < maxSeq[t.Topic] && t.Err() == nil {
				behind++
			}
		}
		if behind == 0 {
			break
		}
		sleep(ctx, 20*time.Millisecond) // poll interval
	}
	for _, t := range r.terms {
		if err := t.Stop(); err != nil {
			r.problem("terminal %s ended on an error: %v", t.Name, err)
		}
		if t.Last() < maxSeq[t.Topic] {
			r.problem("terminal %s is at seq %d of %d after %v", t.Name, t.Last(), maxSeq[t.Topic], r.c.Drain)
		}
		rep.Workload.Moves += t.Moves()
		rep.Workload.Streams += t.Streams()
	}
	for _, topic := range r.topics {
		recs, err := r.handovers(ctx, topic)
		if err != nil {
			r.problem("read the hand-over records of %s: %v", topic, err)
			continue
		}
		r.h.HandoversSeen(topic, recs, len(recs) < 1000)
		for _, h := range recs {
			rep.Handovers++
			e := Event{At: h.At.Sub(r.start).Seconds(), Kind: "handover", Target: topic,
				Detail: fmt.Sprintf("epoch %d of %s %s at seq %d", h.Epoch, h.Holder, h.Reason, h.LastSeq)}
			if !h.SuccessorAt.IsZero() {
				e.Detail += fmt.Sprintf(" -> %s (epoch %d) after %.1f ms", h.Successor, h.SuccessorEpoch,
					float64(h.SuccessorAt.Sub(h.At).Microseconds())/1000)
			}
			r.mu.Lock()
			r.timeline = append(r.timeline, e)
			r.mu.Unlock()
		}
	}
	if r.c.Sabotage && len(r.terms) > 0 {
		t := r.terms[0]
		u := baton.Update{ID: "sabotage", Value: json.RawMessage(`"sabotage"`), MsgID: "sabotage"}
		r.h.Delivered(checker.Delivery{Terminal: t.Name, Topic: t.Topic, Item: wire.Item{Seq: t.Last() + 2, ID: u.ID, Value: u.Value,
			MsgID: u.MsgID, Hash: baton.HashItem(t.Topic, u), Epoch: 1, Publisher: "sabotage"}, At: time.Now()})
		r.logf("sabotage: recorded a bogus delivery to %s at seq %d", t.Name, t.Last()+2)
	}
	// Every item appended must end up published, and no terminal may hold
	// one beyond the final cursor.
	rep.Cursors = make(map[string]uint64)
	for _, topic := range r.topics {
		cur, err := r.settle(ctx, topic, 30*time.Second)
		if err != nil {
			r.problem("%s: %v", topic, err)
			continue
		}
		rep.Cursors[topic] = cur
		r.h.PublishedSeen(topic, cur)
	}

	// Stop the servers gracefully before the ledger is verified, so that
	// it is read at rest.
	var wg sync.WaitGroup
	for _, n := range r.nodes {
		if n.Alive() {
			wg.Go(func() { n.Stop(10 * time.Second) })
		}
	}
	wg.Wait()
	rep.Ledger = r.verifyLedger(ctx)
	if rep.Ledger.Ran && !rep.Ledger.OK {
		r.problem("baton ledger verify failed: %s", rep.Ledger.Output)
	}
	for topic, n := range rep.Ledger.Leaves {
		r.h.LedgerSeen(topic, n)
	}

	rep.Check = r.h.Check(r.follow)
	rep.HandoverMS = r.handoverTimes()
	rep.Workload.Acked, rep.Workload.Delivered = rep.Check.Acked, rep.Check.Delivered

	r.mu.Lock()
	for k, c := range r.counts {
		if c.Planned > 0 {
			rep.Faults[string(k)] = *c
			rep.Injected += c.Injected
		}
	}
	rep.Timeline = append([]Event(nil), r.timeline...)
	rep.Problems = append([]string(nil), r.problems...)
	r.mu.Unlock()
	slices.SortStableFunc(rep.Timeline, func(a, b Event) int {
		switch {
		case a.At < b.At:
			return -1
		case a.At > b.At:
			return 1
		}
		return 0
	})
	rep.Seconds = time.Since(r.start).Seconds()
	rep.OK = rep.Check.OK() && len(rep.Problems) == 0 && rep.Check.Acked > 0
	if rep.Check.Acked == 0 {
		rep.Problems = append(rep.Problems, "no item was acknowledged")
	}
	return rep
}

// handovers reads a topic's release records from any node.
func (r *run) handovers(ctx context.Context, topic string) ([]baton.ReleaseRecord, error) {
	var out struct {
		Handovers []baton.ReleaseRecord `json:"handovers"`
	}
	err := errors.New("no node alive")
	for _, n := range r.nodes {
		if !n.Alive() {
			continue
		}
		if err = r.getJSON(ctx, n.URL()+"/v1/topics/"+topic+"/handovers?limit=1000", &out); err == nil {
			return out.Handovers, nil
		}
	}
	return nil, err
}

// verifyLedger runs `baton ledger verify --store URL --json TOPIC` on each
// of the run's topics and reports its exit status. From the JSON it also
// learns each topic's number of leaves, which the checker compares with
// the cursor.
func (r *run) verifyLedger(ctx context.Context) LedgerCheck {
	exe := r.c.Exe
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return LedgerCheck{Ran: true, Output: "find own executable: " + err.Error()}
		}
	}
	lc := LedgerCheck{Ran: true, OK: true, Leaves: make(map[string]uint64)}
	var outs []string
	for _, topic := range r.topics {
		args := []string{"ledger", "verify", "--store", r.store, "--json"}
		vctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		var stdout, stderr bytes.Buffer
		vc := exec.CommandContext(vctx, exe, append(args, topic)...)
		vc.Stdout, vc.Stderr = &stdout, &stderr
		err := vc.Run()
		cancel()
		var reps []struct {
			Topic    string
			Leaves   uint64
			Problems []struct{ Where, What string }
		}
		parsed := json.Unmarshal(stdout.Bytes(), &reps) == nil && len(reps) == 1
		switch {
		case parsed:
			lc.Leaves[topic] = reps[0].Leaves
			line := fmt.Sprintf("%s: %d leaves", topic, reps[0].Leaves)
			for i, p := range reps[0].Problems {
				if i == 5 {
					line += fmt.Sprintf("; and %d more", len(reps[0].Problems)-5)
					break
				}
				line += fmt.Sprintf("; %s: %s", p.Where, p.What)
			}
			if err == nil {
				line += ": OK"
			}
			outs = append(outs, line)
		default:
			outs = append(outs, strings.TrimSpace(stdout.String()))
		}
		if err != nil {
			lc.OK = false
			if msg := strings.TrimSpace(stderr.String()); msg != "" {
				outs = append(outs, topic+": "+msg)
			} else if !parsed {
				outs = append(outs, topic+": "+err.Error())
			}
		}
	}
	lc.Output = strings.Join(outs, "\n")
	if len(lc.Output) > 4000 {
		lc.Output = lc.Output[:4000] + " ..."
	}
	return lc
}

// settle waits, once the sources have stopped, until every appended item
// of topic is published (the cursor is at the last appended seq, twice in a
// row), and returns the cursor.
func (r *run) settle(ctx context.Context, topic string, d time.Duration) (uint64, error) {
	deadline := time.Now().Add(d)
	var cur baton.Cursor
	var info baton.TopicInfo
	stable := 0
	var err error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		err = errors.New("no node alive")
		for _, n := range r.nodes {
			if !n.Alive() {
				continue
			}
			if err = r.getJSON(ctx, n.URL()+"/v1/topics/"+topic, &info); err == nil {
				err = r.getJSON(ctx, n.URL()+"/v1/topics/"+topic+"/cursor", &cur)
			}
			if err == nil {
				break
			}
		}
		if err == nil && cur.Seq == info.LastSeq {
			if stable++; stable == 2 {
				return cur.Seq, nil
			}
		} else {
			stable = 0
		}
		sleep(ctx, 100*time.Millisecond) // poll interval
	}
	if err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("the cursor is at seq %d, %d items appended are not published after %v", cur.Seq, info.LastSeq-cur.Seq, d)
}

// handoverTimes measures, per kind of fault, the time from the fault to the
// first item any terminal received under a later epoch of the topic.
func (r *run) handoverTimes() map[string]HandoverTime {
	first := make(map[string]map[uint64]time.Time) // topic -> epoch -> first delivery
	for _, d := range r.h.Deliveries() {
		m := first[d.Topic]
		if m == nil {
			m = make(map[uint64]time.Time)
			first[d.Topic] = m
		}
		if t, ok := m[d.Epoch]; !ok || d.At.Before(t) {
			m[d.Epoch] = d.At
		}
	}
	r.mu.Lock()
	vs := append([]victim(nil), r.victims...)
	r.mu.Unlock()
	ms := make(map[string][]float64)
	for _, v := range vs {
		var next time.Time
		for e, t := range first[v.topic] {
			if e > v.epoch && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
		if !next.IsZero() && next.After(v.at) {
			ms[string(v.kind)] = append(ms[string(v.kind)], float64(next.Sub(v.at).Microseconds())/1000)
		}
	}
	out := make(map[string]HandoverTime)
	for k, xs := range ms {
		slices.Sort(xs)
		out[k] = HandoverTime{N: len(xs), P50: xs[len(xs)/2], P99: xs[min(len(xs)-1, len(xs)*99/100)], Max: xs[len(xs)-1]}
	}
	return out
}
