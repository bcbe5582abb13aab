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
	var hmu sync.Mutex
	recsOf := make(map[string][]baton.ReleaseRecord, len(r.topics))
	r.eachTopic(ctx, func(topic string) {
		recs, err := r.handovers(ctx, topic)
		if err != nil {
			r.problem("read the hand-over records of %s: %v", topic, err)
			return
		}
		r.h.HandoversSeen(topic, recs, len(recs) < 1000)
		hmu.Lock()
		defer hmu.Unlock()
		recsOf[topic] = recs
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
	})
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
	audited := make([]string, 0, len(r.topics))
	var cmu sync.Mutex
	r.eachTopic(ctx, func(topic string) {
		cur, err := r.settle(ctx, topic, 30*time.Second)
		if err != nil {
			r.problem("%s: %v", topic, err)
			return
		}
		r.h.PublishedSeen(topic, cur)
		err = r.audit(ctx, topic, cur)
		cmu.Lock()
		defer cmu.Unlock()
		rep.Cursors[topic] = cur
		if err != nil {
			r.problem("audit %s: %v", topic, err)
			return
		}
		audited = append(audited, topic)
	})
	r.follow[auditor] = audited
	if len(r.topics) != len(audited) {
		r.logf("audited %d topics of %d", len(audited), len(r.topics))
	}
	var silent []string
	for _, topic := range r.topics {
		if _, ok := maxSeq[topic]; !ok {
			silent = append(silent, topic)
		}
	}
	if len(silent) > 0 {
		r.problem("%d topics got no acknowledged item, so nothing was checked on them: %s", len(silent), strings.Join(silent[:min(len(silent), 5)], ", "))
	}

	// Stop the servers gracefully before the ledger is verified, so that
	// it is read at rest.
	var wg sync.WaitGroup
	for _, n := range r.allNodes() {
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
	rep.HandoverMS = r.handoverTimes(recsOf)
	rep.HandoverTo = "the first item a terminal got from its successor"
	if r.c.Many() {
		rep.HandoverTo = "its successor's acquisition of the lease (release records)"
	}
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

// auditor is the name under which the final read of every topic's
// published items (audit) is recorded, as if a terminal had read them all.
const auditor = "audit"

// finishWorkers bounds the topics read at once at the end of a run.
const finishWorkers = 8

// eachTopic calls fn for every topic of the run, finishWorkers at a time.
func (r *run) eachTopic(ctx context.Context, fn func(topic string)) {
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(finishWorkers, len(r.topics)) {
		wg.Go(func() {
			for t := range work {
				fn(t)
			}
		})
	}
	for _, t := range r.topics {
		if ctx.Err() != nil {
			break
		}
		work <- t
	}
	close(work)
	wg.Wait()
}

// audit reads every published item of topic still kept, up to cursor
// (GET /v1/topics/{t}/items), into the history as deliveries to auditor: the
// checker then holds every topic, followed by a terminal or not, to the
// same guarantees (every acknowledged item published once, in order, with
// the content the source was told, within its epoch's range). Items
// trimmed by --retain are excused as a terminal's reset would be.
func (r *run) audit(ctx context.Context, topic string, cursor uint64) error {
	var info baton.TopicInfo
	var err error
	for _, n := range r.nodes {
		if err = r.getJSON(ctx, n.URL()+"/v1/topics/"+topic, &info); err == nil {
			break
		}
	}
	if err != nil {
		return err
	}
	r.h.TerminalStarted(auditor, topic, 0)
	after := uint64(0)
	if info.FirstSeq > 1 {
		r.h.ResetSeen(checker.Reset{Terminal: auditor, Topic: topic, Earliest: info.FirstSeq})
		after = info.FirstSeq - 1
	}
	for after < cursor {
		var page wire.ItemsResponse
		for _, n := range r.nodes {
			if err = r.getJSON(ctx, fmt.Sprintf("%s/v1/topics/%s/items?after=%d&limit=1000", n.URL(), topic, after), &page); err == nil {
				break
			}
		}
		var we *wire.Error
		if errors.As(err, &we) && we.Code == baton.CodeGone && we.Earliest > after+1 {
			// Trimmed meanwhile (the publisher trims after its commits):
			// excused as a terminal's reset is.
			r.h.ResetSeen(checker.Reset{Terminal: auditor, Topic: topic, Earliest: we.Earliest})
			after = we.Earliest - 1
			continue
		}
		if err != nil {
			return err
		}
		if len(page.Items) == 0 {
			return fmt.Errorf("no item after seq %d, yet the cursor is at %d", after, cursor)
		}
		now := time.Now()
		for _, p := range page.Items {
			if p.Seq > cursor {
				break
			}
			r.h.Delivered(checker.Delivery{Terminal: auditor, Topic: topic, Item: wire.ItemOf(p), At: now})
		}
		after = page.NextAfter
	}
	return nil
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
// of the run's topics (with many topics, once on every topic of the store,
// keeping the run's) and reports its exit status. From the JSON it also
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
	batches := make([][]string, 0, len(r.topics))
	if r.c.Many() {
		batches = append(batches, nil) // every topic of the store
	} else {
		for _, topic := range r.topics {
			batches = append(batches, []string{topic})
		}
	}
	ours := make(map[string]bool, len(r.topics))
	for _, t := range r.topics {
		ours[t] = true
	}
	clean := 0
	for _, batch := range batches {
		args := []string{"ledger", "verify", "--store", r.store, "--json", "--quiet"}
		vctx, cancel := context.WithTimeout(ctx, 2*time.Minute+time.Duration(len(r.topics))*100*time.Millisecond)
		var stdout, stderr bytes.Buffer
		vc := exec.CommandContext(vctx, exe, append(args, batch...)...)
		vc.Stdout, vc.Stderr = &stdout, &stderr
		err := vc.Run()
		cancel()
		var reps []struct {
			Topic    string
			Leaves   uint64
			Problems []struct{ Where, What string }
		}
		what := strings.Join(batch, " ")
		if what == "" {
			what = "every topic"
		}
		if json.Unmarshal(stdout.Bytes(), &reps) != nil {
			lc.OK = false
			outs = append(outs, fmt.Sprintf("%s: %v: %s %s", what, err, strings.TrimSpace(stdout.String()), strings.TrimSpace(stderr.String())))
			continue
		}
		for _, rep := range reps {
			if !ours[rep.Topic] {
				continue
			}
			lc.Leaves[rep.Topic] = rep.Leaves
			if len(rep.Problems) == 0 && r.c.Many() {
				clean++ // one line for all of them, below
				continue
			}
			line := fmt.Sprintf("%s: %d leaves", rep.Topic, rep.Leaves)
			for i, p := range rep.Problems {
				if i == 5 {
					line += fmt.Sprintf("; and %d more", len(rep.Problems)-5)
					break
				}
				line += fmt.Sprintf("; %s: %s", p.Where, p.What)
			}
			if len(rep.Problems) == 0 {
				line += ": OK"
			}
			outs = append(outs, line)
		}
		if err != nil {
			lc.OK = false
			if msg := strings.TrimSpace(stderr.String()); msg != "" {
				outs = append(outs, what+": "+msg)
			}
		}
	}
	for _, t := range r.topics {
		if _, ok := lc.Leaves[t]; !ok && lc.OK {
			lc.OK = false
			outs = append(outs, t+": not audited")
		}
	}
	if clean > 0 {
		outs = append(outs, fmt.Sprintf("%d topics: OK", clean))
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
// first item any terminal received under a later epoch of the topic; with
// many topics, where a topic gets an item now and then and few have a
// terminal, to the successor's acquisition of the lease as the topic's
// release record (recs) tells it.
func (r *run) handoverTimes(recs map[string][]baton.ReleaseRecord) map[string]HandoverTime {
	first := make(map[string]map[uint64]time.Time) // topic -> epoch -> first delivery
	for _, d := range r.h.Deliveries() {
		if d.Terminal == auditor {
			continue // read at the end, not as published
		}
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
		if r.c.Many() {
			for _, h := range recs[v.topic] {
				if h.Epoch == v.epoch && h.SuccessorEpoch != 0 {
					next = h.SuccessorAt
				}
			}
		}
		for e, t := range first[v.topic] {
			if !r.c.Many() && e > v.epoch && (next.IsZero() || t.Before(next)) {
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
