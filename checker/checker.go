// Package checker judges a run from its observed history alone: what
// sources were told (acknowledgements) and what terminals received. It
// shares no code path with the servers: it does not read the store.
//
// It finds: acknowledged items a terminal never received (lost); an item
// received twice, or one message published at two seqs (duplicated); seqs
// out of order (reordered); content that differs from its hash, from what
// the source was told, or between terminals (mismatched); and publications
// whose epochs go back or whose epoch had two publishers (split brain).
package checker

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/wire"
)

// Ack is what a source was told: its message is durable at Seq.
type Ack struct {
	Source string
	Topic  string
	MsgID  string
	Seq    uint64
	Hash   baton.Hash
	At     time.Time
}

// Delivery is one item as a terminal's application received it.
type Delivery struct {
	Terminal string
	Topic    string
	wire.Item
	At time.Time
}

// Reset is a terminal being told its position is no longer kept.
type Reset struct {
	Terminal string
	Topic    string
	Earliest uint64
}

// History collects a run's observations. It is safe for concurrent use.
type History struct {
	mu         sync.Mutex
	acks       []Ack
	deliveries []Delivery
	resets     []Reset
	sent       map[string]bool // topic/msgID of every update a source sent
	// published holds each topic's cursor read at the end of a run, and
	// ledger the number of ledger leaves an audit counted.
	published map[string]uint64
	ledger    map[string]uint64
	// starts holds the position each terminal first subscribed after.
	starts map[[2]string]uint64
	// handovers holds each topic's release records as the API listed
	// them (GET /v1/topics/{t}/handovers), and whether the list was
	// complete (not cut by the API's limit).
	handovers map[string]handoverList
	// keep is the servers' retention in items (0: unbounded): see
	// KeepItems.
	keep uint64
}

type handoverList struct {
	recs     []baton.ReleaseRecord
	complete bool
}

// KeepItems says the servers kept only the last n published items of a
// topic (serve --retain). A msg id is known only while its item is kept
// (docs/api.md, "Idempotent retries"), so a message published again more
// than n seqs after its first copy (a retry that came after the first was
// trimmed) is counted in Report.Reappended, not as a duplicate.
func (h *History) KeepItems(n uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.keep = n
}

// PublishedSeen records a topic's cursor (GET /v1/topics/{t}/cursor) read
// at the end of a run, once nothing more was appended: no terminal may have
// received an item beyond it.
func (h *History) PublishedSeen(topic string, cursor uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.published == nil {
		h.published = make(map[string]uint64)
	}
	h.published[topic] = cursor
}

// LedgerSeen records how many leaves an audit of the topic's ledger
// (`baton ledger verify`) counted at the end of a run: one per published
// item, so as many as the cursor of PublishedSeen.
func (h *History) LedgerSeen(topic string, leaves uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ledger == nil {
		h.ledger = make(map[string]uint64)
	}
	h.ledger[topic] = leaves
}

// TerminalStarted records that terminal first subscribed to topic after
// seq after: its first item must then be after+1 (or a reset's earliest).
func (h *History) TerminalStarted(terminal, topic string, after uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.starts == nil {
		h.starts = make(map[[2]string]uint64)
	}
	h.starts[[2]string{terminal, topic}] = after
}

// HandoversSeen records a topic's release records as read from the API at
// the end of a run. complete says the list holds every record ever made
// (the API's limit did not cut it): only then is a missing epoch an
// anomaly.
func (h *History) HandoversSeen(topic string, recs []baton.ReleaseRecord, complete bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.handovers == nil {
		h.handovers = make(map[string]handoverList)
	}
	h.handovers[topic] = handoverList{recs: append([]baton.ReleaseRecord(nil), recs...), complete: complete}
}

// NewHistory returns an empty history.
func NewHistory() *History { return &History{sent: make(map[string]bool)} }

// Sent records that a source sent (or is about to send) a message.
func (h *History) Sent(topic, msgID string) {
	h.mu.Lock()
	h.sent[topic+"/"+msgID] = true
	h.mu.Unlock()
}

// Acked records an acknowledgement.
func (h *History) Acked(a Ack) {
	h.mu.Lock()
	h.acks = append(h.acks, a)
	h.mu.Unlock()
}

// Delivered records a delivery.
func (h *History) Delivered(d Delivery) {
	h.mu.Lock()
	h.deliveries = append(h.deliveries, d)
	h.mu.Unlock()
}

// ResetSeen records a reset event.
func (h *History) ResetSeen(r Reset) {
	h.mu.Lock()
	h.resets = append(h.resets, r)
	h.mu.Unlock()
}

// Acks returns a copy of the acknowledgements.
func (h *History) Acks() []Ack {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Ack(nil), h.acks...)
}

// Deliveries returns a copy of the deliveries.
func (h *History) Deliveries() []Delivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Delivery(nil), h.deliveries...)
}

// LastSeq returns the highest seq terminal has received on topic.
func (h *History) LastSeq(terminal, topic string) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var last uint64
	for i := len(h.deliveries) - 1; i >= 0; i-- {
		d := h.deliveries[i]
		if d.Terminal == terminal && d.Topic == topic {
			return d.Seq
		}
	}
	return last
}

// Anomaly is one broken guarantee.
type Anomaly struct {
	Kind     string `json:"kind"` // lost, duplicated, reordered, mismatched, phantom, split-brain, epoch-regressed, handover, unpublished, ledger
	Topic    string `json:"topic"`
	Terminal string `json:"terminal,omitempty"`
	Seq      uint64 `json:"seq"`
	Detail   string `json:"detail"`
}

// Report is the checker's verdict.
type Report struct {
	Acked      int            `json:"acked"`
	Delivered  map[string]int `json:"delivered"`
	Lost       int            `json:"lost"`
	Duplicated int            `json:"duplicated"`
	Reordered  int            `json:"reordered"`
	Mismatched int            `json:"mismatched"`
	Phantom    int            `json:"phantom"`
	SplitBrain int            `json:"split_brain"`
	// Handover counts broken hand-over records: epochs not strictly
	// increasing, a successor that is not epoch+1, or a delivery outside
	// its epoch's range.
	Handover int `json:"handover"`
	// Unpublished counts items a terminal received beyond the topic's
	// final cursor; Ledger, topics whose ledger does not hold exactly one
	// leaf per published item.
	Unpublished int `json:"unpublished"`
	Ledger      int `json:"ledger"`
	Resets      int `json:"resets"`
	// Reappended counts the copies of messages published again after
	// their first copy was beyond the servers' retention (KeepItems): not
	// an anomaly.
	Reappended int       `json:"reappended,omitempty"`
	Anomalies  []Anomaly `json:"anomalies,omitempty"`
}

// OK reports whether no anomaly was found.
func (r Report) OK() bool { return len(r.Anomalies) == 0 }

// MaxAnomalies bounds the list kept in a report; counts stay exact.
const MaxAnomalies = 200

func (r *Report) add(a Anomaly) {
	switch a.Kind {
	case "lost":
		r.Lost++
	case "duplicated":
		r.Duplicated++
	case "reordered":
		r.Reordered++
	case "mismatched":
		r.Mismatched++
	case "phantom":
		r.Phantom++
	case "split-brain", "epoch-regressed":
		r.SplitBrain++
	case "handover":
		r.Handover++
	case "unpublished":
		r.Unpublished++
	case "ledger":
		r.Ledger++
	}
	if len(r.Anomalies) < MaxAnomalies {
		r.Anomalies = append(r.Anomalies, a)
	}
}

// Check judges the history. terminals lists every terminal that must have
// received every acknowledged item of the topics it followed (terminal ->
// topics); a terminal that was told of a reset is excused for the seqs
// below the reset's earliest.
func (h *History) Check(terminals map[string][]string) Report {
	h.mu.Lock()
	defer h.mu.Unlock()
	rep := Report{Delivered: make(map[string]int), Resets: len(h.resets)}

	type key struct {
		topic string
		seq   uint64
	}
	acked := make(map[key]Ack, len(h.acks))
	lastBySource := make(map[string]uint64)
	ackedMsg := make(map[string]uint64, len(h.acks)) // topic/msgID -> seq
	for _, a := range h.acks {
		mk := a.Topic + "/" + a.MsgID
		if s, ok := ackedMsg[mk]; ok {
			// The same message acknowledged again (a retry after a lost
			// acknowledgement): it must be at the same seq.
			if s != a.Seq {
				rep.add(Anomaly{Kind: "duplicated", Topic: a.Topic, Seq: a.Seq,
					Detail: fmt.Sprintf("%s: message %s acknowledged at seq %d and again at seq %d", a.Source, a.MsgID, s, a.Seq)})
			}
			continue
		}
		ackedMsg[mk] = a.Seq
		rep.Acked++
		k := key{a.Topic, a.Seq}
		if o, ok := acked[k]; ok && o.MsgID != a.MsgID {
			rep.add(Anomaly{Kind: "duplicated", Topic: a.Topic, Seq: a.Seq,
				Detail: fmt.Sprintf("seq acknowledged for two messages, %s and %s", o.MsgID, a.MsgID)})
		}
		acked[k] = a
		// A source that waits for each acknowledgement before sending the
		// next must see its seqs grow.
		sk := a.Source + "/" + a.Topic
		if prev := lastBySource[sk]; a.Seq < prev {
			rep.add(Anomaly{Kind: "reordered", Topic: a.Topic, Seq: a.Seq,
				Detail: fmt.Sprintf("%s: acknowledged at seq %d after an earlier message at seq %d", a.Source, a.Seq, prev)})
		}
		lastBySource[sk] = max(lastBySource[sk], a.Seq)
	}

	content := make(map[key]Delivery)                // first delivery of each seq, to compare terminals
	epochOwner := make(map[string]map[uint64]string) // topic -> epoch -> publisher
	type tt struct{ terminal, topic string }
	got := make(map[tt]map[uint64]bool)
	last := make(map[tt]uint64)
	msgSeq := make(map[string]uint64)
	reappended := make(map[key]bool) // copies counted in rep.Reappended
	lastEpoch := make(map[tt]uint64)
	resetBelow := make(map[tt]uint64)
	for _, r := range h.resets {
		k := tt{r.Terminal, r.Topic}
		resetBelow[k] = max(resetBelow[k], r.Earliest)
	}
	started := make(map[tt]bool)
	for k, after := range h.starts {
		started[tt{k[0], k[1]}] = true
		last[tt{k[0], k[1]}] = after
	}
	for _, d := range h.deliveries {
		k := tt{d.Terminal, d.Topic}
		rep.Delivered[d.Terminal]++
		if got[k] == nil {
			got[k] = make(map[uint64]bool)
		}
		if got[k][d.Seq] {
			rep.add(Anomaly{Kind: "duplicated", Topic: d.Topic, Terminal: d.Terminal, Seq: d.Seq, Detail: "delivered twice"})
		}
		got[k][d.Seq] = true
		if d.Seq <= last[k] {
			rep.add(Anomaly{Kind: "reordered", Topic: d.Topic, Terminal: d.Terminal, Seq: d.Seq,
				Detail: fmt.Sprintf("after seq %d", last[k])})
		} else if d.Seq != last[k]+1 && d.Seq > resetBelow[k] && (last[k] != 0 || started[k]) {
			rep.add(Anomaly{Kind: "lost", Topic: d.Topic, Terminal: d.Terminal, Seq: last[k] + 1,
				Detail: fmt.Sprintf("gap: seq %d followed %d", d.Seq, last[k])})
		}
		last[k] = max(last[k], d.Seq)
		if d.Epoch < lastEpoch[k] {
			rep.add(Anomaly{Kind: "epoch-regressed", Topic: d.Topic, Terminal: d.Terminal, Seq: d.Seq,
				Detail: fmt.Sprintf("epoch %d after epoch %d", d.Epoch, lastEpoch[k])})
		}
		lastEpoch[k] = max(lastEpoch[k], d.Epoch)
		if epochOwner[d.Topic] == nil {
			epochOwner[d.Topic] = make(map[uint64]string)
		}
		if p, ok := epochOwner[d.Topic][d.Epoch]; ok && p != d.Publisher {
			rep.add(Anomaly{Kind: "split-brain", Topic: d.Topic, Terminal: d.Terminal, Seq: d.Seq,
				Detail: fmt.Sprintf("epoch %d published by %s and %s", d.Epoch, p, d.Publisher)})
		}
		epochOwner[d.Topic][d.Epoch] = d.Publisher
		it := baton.Item{Topic: d.Topic, Seq: d.Seq, ID: d.ID, Value: d.Value, MsgID: d.MsgID, Hash: d.Hash, Deleted: d.Deleted}
		if !it.Verify() {
			rep.add(Anomaly{Kind: "mismatched", Topic: d.Topic, Terminal: d.Terminal, Seq: d.Seq, Detail: "content does not match its hash"})
		}
		if len(h.sent) > 0 && !h.sent[d.Topic+"/"+d.MsgID] {
			rep.add(Anomaly{Kind: "phantom", Topic: d.Topic, Terminal: d.Terminal, Seq: d.Seq,
				Detail: fmt.Sprintf("message %s was never sent by any source", d.MsgID)})
		}
		sk := key{d.Topic, d.Seq}
		if a, ok := acked[sk]; ok && (a.Hash != d.Hash || a.MsgID != d.MsgID) {
			rep.add(Anomaly{Kind: "mismatched", Topic: d.Topic, Terminal: d.Terminal, Seq: d.Seq,
				Detail: fmt.Sprintf("source was told %s/%s, terminal got %s/%s", a.MsgID, a.Hash, d.MsgID, d.Hash)})
		}
		if o, ok := content[sk]; ok && o.Hash != d.Hash {
			rep.add(Anomaly{Kind: "mismatched", Topic: d.Topic, Terminal: d.Terminal, Seq: d.Seq,
				Detail: fmt.Sprintf("terminals disagree: %s got %s, this got %s", o.Terminal, o.Hash, d.Hash)})
		} else if !ok {
			content[sk] = d
		}
		mk := d.Topic + "/" + d.MsgID
		if s, ok := msgSeq[mk]; ok && s != d.Seq {
			if h.keep > 0 && max(s, d.Seq)-min(s, d.Seq) > h.keep {
				// The first copy's msg id was trimmed with it: count each
				// copy once, whatever the terminals that got it.
				if k := (key{d.Topic, max(s, d.Seq)}); !reappended[k] {
					reappended[k] = true
					rep.Reappended++
				}
			} else {
				rep.add(Anomaly{Kind: "duplicated", Topic: d.Topic, Terminal: d.Terminal, Seq: d.Seq,
					Detail: fmt.Sprintf("message %s published at seq %d and %d", d.MsgID, s, d.Seq)})
			}
		}
		msgSeq[mk] = d.Seq
	}

	h.checkHandovers(&rep)
	h.checkPublished(&rep)

	// Every acknowledged item must reach every terminal of its topic.
	names := make([]string, 0, len(terminals))
	for n := range terminals {
		names = append(names, n)
	}
	sort.Strings(names)
	acks := append([]Ack(nil), h.acks...)
	sort.Slice(acks, func(i, j int) bool { return acks[i].Seq < acks[j].Seq })
	for _, name := range names {
		for _, topic := range terminals[name] {
			k := tt{name, topic}
			for _, a := range acks {
				if a.Topic != topic || a.Seq < resetBelow[k] || got[k][a.Seq] {
					continue
				}
				rep.add(Anomaly{Kind: "lost", Topic: topic, Terminal: name, Seq: a.Seq,
					Detail: fmt.Sprintf("acknowledged message %s never delivered", a.MsgID)})
			}
		}
	}
	return rep
}

// checkHandovers judges each topic's release records and the deliveries
// against them: epochs strictly increasing with no gap, each successor the
// next epoch, the holder of epoch e+1 the successor named by e's record,
// no successor acquiring before its predecessor's release, and every item
// delivered under epoch e published by e's holder within
// (record(e-1).LastSeq, record(e).LastSeq]: two publishers never overlap.
// The caller holds h.mu.
func (h *History) checkHandovers(rep *Report) {
	topics := make([]string, 0, len(h.handovers))
	for t := range h.handovers {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, topic := range topics {
		hl := h.handovers[topic]
		bad := func(epoch uint64, seq uint64, terminal, format string, args ...any) {
			rep.add(Anomaly{Kind: "handover", Topic: topic, Terminal: terminal, Seq: seq,
				Detail: fmt.Sprintf("epoch %d: ", epoch) + fmt.Sprintf(format, args...)})
		}
		recs := append([]baton.ReleaseRecord(nil), hl.recs...)
		// The API lists newest first: epochs must strictly decrease.
		for i := 1; i < len(recs); i++ {
			if recs[i].Epoch >= recs[i-1].Epoch {
				bad(recs[i].Epoch, recs[i].LastSeq, "", "listed after epoch %d: epochs not strictly increasing", recs[i-1].Epoch)
			}
		}
		sort.SliceStable(recs, func(i, j int) bool { return recs[i].Epoch < recs[j].Epoch })
		byEpoch := make(map[uint64]baton.ReleaseRecord, len(recs))
		for i, r := range recs {
			if _, dup := byEpoch[r.Epoch]; dup {
				bad(r.Epoch, r.LastSeq, "", "two release records")
				continue
			}
			byEpoch[r.Epoch] = r
			if !r.Reason.Valid() {
				bad(r.Epoch, r.LastSeq, "", "unknown reason %q", r.Reason)
			}
			if r.SuccessorEpoch != 0 && r.SuccessorEpoch != r.Epoch+1 {
				bad(r.Epoch, r.LastSeq, "", "successor epoch %d, want %d", r.SuccessorEpoch, r.Epoch+1)
			}
			if r.SuccessorEpoch != 0 && !r.SuccessorAt.IsZero() && r.SuccessorAt.Before(r.At) {
				bad(r.Epoch, r.LastSeq, "", "successor %s acquired at %s, before the release at %s: overlap",
					r.Successor, r.SuccessorAt.Format(time.RFC3339Nano), r.At.Format(time.RFC3339Nano))
			}
			if i > 0 {
				p := recs[i-1]
				if r.LastSeq < p.LastSeq {
					bad(r.Epoch, r.LastSeq, "", "ended at seq %d, before epoch %d's end at seq %d", r.LastSeq, p.Epoch, p.LastSeq)
				}
				if hl.complete && r.Epoch > p.Epoch+1 {
					bad(p.Epoch+1, p.LastSeq, "", "ended (epoch %d exists) without a release record", r.Epoch)
				}
			}
			if n, ok := byEpoch[r.Epoch-1]; ok && r.Epoch > 0 {
				if n.SuccessorEpoch == 0 {
					bad(n.Epoch, n.LastSeq, "", "no successor recorded, yet epoch %d exists", r.Epoch)
				} else if n.Successor != r.Holder {
					bad(n.Epoch, n.LastSeq, "", "record names successor %s, but epoch %d was held by %s", n.Successor, r.Epoch, r.Holder)
				}
			}
		}
		if len(recs) == 0 {
			continue
		}
		reported := make(map[string]bool) // one anomaly per terminal and epoch
		for _, d := range h.deliveries {
			if d.Topic != topic {
				continue
			}
			once := func(what string) bool {
				k := fmt.Sprint(d.Terminal, "/", d.Epoch, "/", what)
				if reported[k] {
					return false
				}
				reported[k] = true
				return true
			}
			if r, ok := byEpoch[d.Epoch]; ok {
				if d.Seq > r.LastSeq && once("after") {
					bad(d.Epoch, d.Seq, d.Terminal, "item published by %s after the epoch ended at seq %d (%s): a zombie publisher", d.Publisher, r.LastSeq, r.Reason)
				}
				if d.Publisher != r.Holder && once("holder") {
					bad(d.Epoch, d.Seq, d.Terminal, "item published by %s, but the lease was held by %s", d.Publisher, r.Holder)
				}
			}
			if p, ok := byEpoch[d.Epoch-1]; ok && d.Epoch > 0 && d.Seq <= p.LastSeq && once("before") {
				bad(d.Epoch, d.Seq, d.Terminal, "item at or before seq %d, where epoch %d ended: publishers overlap", p.LastSeq, p.Epoch)
			}
		}
	}
}

// checkPublished compares the deliveries with each topic's final cursor and
// the ledger with the cursor. The caller holds h.mu.
func (h *History) checkPublished(rep *Report) {
	maxSeq := make(map[string]Delivery)
	for _, d := range h.deliveries {
		if d.Seq > maxSeq[d.Topic].Seq {
			maxSeq[d.Topic] = d
		}
	}
	topics := make([]string, 0, len(h.published))
	for t := range h.published {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, topic := range topics {
		cursor := h.published[topic]
		if d, ok := maxSeq[topic]; ok && d.Seq > cursor {
			rep.add(Anomaly{Kind: "unpublished", Topic: topic, Terminal: d.Terminal, Seq: d.Seq,
				Detail: fmt.Sprintf("received, but the topic's cursor ended at seq %d: an item delivered before it was published", cursor)})
		}
		if leaves, ok := h.ledger[topic]; ok && leaves != cursor {
			rep.add(Anomaly{Kind: "ledger", Topic: topic, Seq: min(leaves, cursor) + 1,
				Detail: fmt.Sprintf("the ledger holds %d leaves, but %d items were published", leaves, cursor)})
		}
	}
}
