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
	Terminal  string
	Topic     string
	Seq       uint64
	ID        string
	Value     []byte
	MsgID     string
	Hash      baton.Hash
	Epoch     uint64
	Publisher string
	At        time.Time
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
	Kind     string `json:"kind"` // lost, duplicated, reordered, mismatched, phantom, split-brain, epoch-regressed
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
	Resets     int            `json:"resets"`
	Anomalies  []Anomaly      `json:"anomalies,omitempty"`
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
	rep := Report{Acked: len(h.acks), Delivered: make(map[string]int), Resets: len(h.resets)}

	type key struct {
		topic string
		seq   uint64
	}
	acked := make(map[key]Ack, len(h.acks))
	lastBySource := make(map[string]uint64)
	for _, a := range h.acks {
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
	lastEpoch := make(map[tt]uint64)
	resetBelow := make(map[tt]uint64)
	for _, r := range h.resets {
		k := tt{r.Terminal, r.Topic}
		resetBelow[k] = max(resetBelow[k], r.Earliest)
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
		} else if d.Seq != last[k]+1 && d.Seq > resetBelow[k] && last[k] != 0 {
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
		it := baton.Item{Topic: d.Topic, Seq: d.Seq, ID: d.ID, Value: d.Value, MsgID: d.MsgID, Hash: d.Hash}
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
			rep.add(Anomaly{Kind: "duplicated", Topic: d.Topic, Terminal: d.Terminal, Seq: d.Seq,
				Detail: fmt.Sprintf("message %s published at seq %d and %d", d.MsgID, s, d.Seq)})
		}
		msgSeq[mk] = d.Seq
	}

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
