package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
)

const (
	// liveTTL is the ttl of leases and members that must stay live for the
	// whole subtest.
	liveTTL = time.Minute
	// waitTimeout bounds every wait for a condition or a wake-up.
	waitTimeout = 5 * time.Second
	pollEvery   = 5 * time.Millisecond
	// timeSlack is how far two store times that stand for one instant may be
	// apart (an engine may keep milliseconds).
	timeSlack = 5 * time.Millisecond
	// clockSkew is how far the store's clock may be from the test's.
	clockSkew = time.Minute
	// pageAll is a limit larger than anything a subtest writes.
	pageAll = 10000
)

// runID makes names unique across processes sharing one store.
var runID = func() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}()

var nameSeq atomic.Uint64

// uniqueName derives a valid topic (or node) name from the subtest's name,
// unique in this process and very likely across processes.
func uniqueName(t *testing.T, tag string) string {
	suffix := fmt.Sprintf("-%s%d", runID, nameSeq.Add(1))
	if tag != "" {
		suffix = "-" + tag + suffix
	}
	var b strings.Builder
	for _, c := range []byte(t.Name()) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			c = '_'
		}
		b.WriteByte(c)
	}
	name := b.String()
	if max := baton.MaxTopicLen - len("st-") - len(suffix); len(name) > max {
		name = name[len(name)-max:] // keep the most specific part
	}
	return "st-" + name + suffix
}

// env is one subtest's view of one store handle.
type env struct {
	t        *testing.T
	s        baton.Store
	ctx      context.Context
	shortTTL time.Duration
	// names and leases map a subtest's holder names ("node-a") to unique
	// node names and their live node leases; a pair's handles share them.
	names  map[string]string
	leases map[string]baton.NodeLease
}

func newEnv(t *testing.T, s baton.Store, cfg config) *env {
	if s == nil {
		t.Fatal("factory returned a nil store")
	}
	return &env{t: t, s: s, ctx: t.Context(), shortTTL: cfg.shortTTL,
		names: make(map[string]string), leases: make(map[string]baton.NodeLease)}
}

func (e *env) topic(tag string) string { return uniqueName(e.t, tag) }

// pair is two handles onto the same data.
type pair struct{ a, b *env }

var msgSeq atomic.Uint64

// newUpdates returns n normalized updates with unique msg ids.
func newUpdates(t *testing.T, n int) []baton.Update {
	t.Helper()
	out := make([]baton.Update, n)
	for i := range out {
		k := msgSeq.Add(1)
		u, err := baton.Normalize(baton.Update{
			ID:    fmt.Sprintf("quote.%d", k%7),
			Value: json.RawMessage(fmt.Sprintf(`{ "n": %d, "px": [1.5, 2], "note": "h\u00e9 \"q\"" }`, k)),
			MsgID: fmt.Sprintf("m-%s-%d", runID, k),
		})
		if err != nil {
			t.Fatalf("Normalize: %v", err)
		}
		out[i] = u
	}
	return out
}

func isErr(err, target error) bool { return errors.Is(err, target) }

func (e *env) wantErr(err, target error, format string, args ...any) {
	e.t.Helper()
	if !errors.Is(err, target) {
		e.t.Fatalf("%s: err = %v, want %v", fmt.Sprintf(format, args...), err, target)
	}
}

// wantField checks that err is an *baton.InvalidError naming field: the
// engines share the checks (baton.ValidateAppend, baton.Commit.Validate),
// so they name the same field.
func (e *env) wantField(err error, field string, format string, args ...any) {
	e.t.Helper()
	var ie *baton.InvalidError
	if !errors.As(err, &ie) || ie.Field != field {
		e.t.Fatalf("%s: err = %v, want an invalid %q", fmt.Sprintf(format, args...), err, field)
	}
}

func (e *env) noErr(err error, format string, args ...any) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
	}
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
// It stands for waiting on a condition (a lease lapsing), never for
// synchronisation that a signal could give.
func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(pollEvery)
	}
}

// wake waits for a wake-up on sub, failing after waitTimeout.
func (e *env) wake(sub baton.Subscription, what string) {
	e.t.Helper()
	select {
	case <-sub.C():
	case <-time.After(waitTimeout):
		e.t.Fatalf("no wake-up within %v after %s [N1]", waitTimeout, what)
	}
}

// subscribe subscribes and closes the subscription at cleanup.
func (e *env) subscribe(topic string, signals baton.Signal) baton.Subscription {
	sub := e.s.Subscribe(topic, signals)
	if sub == nil {
		e.t.Fatal("Subscribe returned nil")
	}
	e.t.Cleanup(sub.Close)
	return sub
}

// Locks.

// name is the node name that stands for holder in this subtest: unique to
// the subtest (node leases outlive it), the same through both handles of a
// pair.
func (e *env) name(holder string) string {
	if holder == "" {
		return ""
	}
	if n, ok := e.names[holder]; ok {
		return n
	}
	n := uniqueName(e.t, holder)
	e.names[holder] = n
	return n
}

// nodeLease returns holder's live node lease, acquiring one with ttl if it
// has none yet in this subtest (or its last one lapsed through lapse). An
// empty holder gives a NodeLease with no node, for the invalid-input tests.
func (e *env) nodeLease(holder string, ttl time.Duration) baton.NodeLease {
	e.t.Helper()
	if holder == "" {
		return baton.NodeLease{Epoch: 1}
	}
	if nl, ok := e.leases[holder]; ok {
		return nl
	}
	nl, err := e.s.AcquireNode(e.ctx, e.name(holder), ttl)
	e.noErr(err, "AcquireNode(%s, %v)", holder, ttl)
	e.leases[holder] = nl
	return nl
}

// nodeOf is the node lease a topic lease is held under.
func nodeOf(l baton.Lease) baton.NodeLease {
	return baton.NodeLease{Node: l.Holder, Epoch: l.NodeEpoch}
}

func (e *env) acquire(topic, holder string, ttl time.Duration) baton.Lease {
	e.t.Helper()
	l, err := e.s.Acquire(e.ctx, topic, e.nodeLease(holder, ttl))
	e.noErr(err, "Acquire(%s, %s)", topic, holder)
	return l
}

// renew renews the node lease l is held under and returns l as renewed.
func (e *env) renew(l baton.Lease, ttl time.Duration) (baton.Lease, error) {
	nl, err := e.s.RenewNode(e.ctx, nodeOf(l), ttl)
	if err != nil {
		return baton.Lease{}, err
	}
	l.ExpiresAt, l.Remaining = nl.ExpiresAt, nl.Remaining
	return l, nil
}

func (e *env) release(l baton.Lease, reason baton.ReleaseReason) {
	e.t.Helper()
	e.noErr(e.s.Release(e.ctx, l, reason), "Release(%s epoch %d, %s)", l.Holder, l.Epoch, reason)
}

func (e *env) lock(topic string) baton.LockState {
	e.t.Helper()
	st, err := e.s.Lock(e.ctx, topic)
	e.noErr(err, "Lock(%s)", topic)
	return st
}

func (e *env) handovers(topic string) []baton.ReleaseRecord {
	e.t.Helper()
	recs, err := e.s.Handovers(e.ctx, topic, pageAll)
	e.noErr(err, "Handovers(%s)", topic)
	return recs
}

// lapse shortens the node lease of a live lease to the short ttl (L3) and
// waits until the store no longer finds the lease live. It returns the
// lease as last renewed: its ExpiresAt is when it ended. The holder's next
// acquire in the subtest starts a new node lease.
func (e *env) lapse(l baton.Lease) baton.Lease {
	e.t.Helper()
	short, err := e.renew(l, e.shortTTL)
	e.noErr(err, "RenewNode(%s epoch %d, %v) to let it lapse", l.Holder, l.NodeEpoch, e.shortTTL)
	e.waitFor(fmt.Sprintf("the lease of %s epoch %d to lapse", l.Holder, l.Epoch), func() bool {
		st, err := e.s.Lock(e.ctx, l.Topic)
		e.noErr(err, "Lock(%s)", l.Topic)
		return !st.Held
	})
	for holder, nl := range e.leases {
		if nl.Node == l.Holder && nl.Epoch == l.NodeEpoch {
			delete(e.leases, holder)
		}
	}
	return short
}

// Queue.

func (e *env) append(topic string, ups []baton.Update) []baton.Receipt {
	e.t.Helper()
	rs, err := e.s.Append(e.ctx, topic, ups)
	e.noErr(err, "Append(%s, %d updates)", topic, len(ups))
	if len(rs) != len(ups) {
		e.t.Fatalf("Append(%s): %d receipts for %d updates", topic, len(rs), len(ups))
	}
	return rs
}

// appendN appends n fresh updates and returns them with their items as read
// back from the store.
func (e *env) appendN(topic string, n int) []baton.Item {
	e.t.Helper()
	rs := e.append(topic, newUpdates(e.t, n))
	its, err := e.s.Items(e.ctx, topic, rs[0].Seq-1, n)
	e.noErr(err, "Items(%s)", topic)
	if len(its) != n {
		e.t.Fatalf("Items(%s) after appending %d: got %d items", topic, n, len(its))
	}
	return its
}

func (e *env) items(topic string, after uint64, limit int) []baton.Item {
	e.t.Helper()
	its, err := e.s.Items(e.ctx, topic, after, limit)
	e.noErr(err, "Items(%s, after %d, limit %d)", topic, after, limit)
	return its
}

func (e *env) topicInfo(topic string) baton.TopicInfo {
	e.t.Helper()
	ti, err := e.s.Topic(e.ctx, topic)
	e.noErr(err, "Topic(%s)", topic)
	return ti
}

func (e *env) topics() []string {
	e.t.Helper()
	ts, err := e.s.Topics(e.ctx)
	e.noErr(err, "Topics")
	return ts
}

// Publications.

// commitOf builds the commit of items under l; the store makes its leaves
// (c.Leaves()).
func commitOf(l baton.Lease, prev uint64, items []baton.Item) baton.Commit {
	// A time with nanoseconds, to check that leaves round-trip exactly.
	return baton.Commit{Topic: l.Topic, Epoch: l.Epoch, Holder: l.Holder, PrevSeq: prev, Items: items, At: time.Now()}
}

func (e *env) commit(l baton.Lease, prev uint64, items []baton.Item) baton.Cursor {
	e.t.Helper()
	cur, err := e.s.Commit(e.ctx, commitOf(l, prev, items))
	e.noErr(err, "Commit(%s epoch %d, prev %d, %d items)", l.Holder, l.Epoch, prev, len(items))
	return cur
}

func (e *env) cursor(topic string) baton.Cursor {
	e.t.Helper()
	c, err := e.s.Cursor(e.ctx, topic)
	e.noErr(err, "Cursor(%s)", topic)
	return c
}

func (e *env) published(topic string, after uint64, limit int) []baton.Published {
	e.t.Helper()
	ps, err := e.s.Published(e.ctx, topic, after, limit)
	e.noErr(err, "Published(%s, after %d, limit %d)", topic, after, limit)
	return ps
}

func (e *env) leaves(topic string, after uint64, limit int) []baton.Leaf {
	e.t.Helper()
	ls, err := e.s.Leaves(e.ctx, topic, after, limit)
	e.noErr(err, "Leaves(%s, after %d, limit %d)", topic, after, limit)
	return ls
}

// Members.

func (e *env) members() []baton.Member {
	e.t.Helper()
	ms, err := e.s.Members(e.ctx)
	e.noErr(err, "Members")
	return ms
}

func findMember(ms []baton.Member, node string) (baton.Member, bool) {
	for _, m := range ms {
		if m.Node == node {
			return m, true
		}
	}
	return baton.Member{}, false
}

// Comparisons.

func near(a, b time.Time, slack time.Duration) bool {
	d := a.Sub(b)
	return d <= slack && d >= -slack
}

func nearDur(a, b, slack time.Duration) bool {
	d := a - b
	return d <= slack && d >= -slack
}

// checkNow checks that a store time is set and close to the test's clock.
func (e *env) checkNow(what string, at time.Time) {
	e.t.Helper()
	if at.IsZero() {
		e.t.Fatalf("%s is zero", what)
	}
	if !near(at, time.Now(), clockSkew) {
		e.t.Fatalf("%s = %v, more than %v from the test's clock (%v): wrong unit?", what, at, clockSkew, time.Now())
	}
}

// diffItem describes how got differs from want, or returns "".
func diffItem(got, want baton.Item) string {
	var d []string
	if got.Topic != want.Topic {
		d = append(d, fmt.Sprintf("Topic %q, want %q", got.Topic, want.Topic))
	}
	if got.Seq != want.Seq {
		d = append(d, fmt.Sprintf("Seq %d, want %d", got.Seq, want.Seq))
	}
	if got.ID != want.ID {
		d = append(d, fmt.Sprintf("ID %q, want %q", got.ID, want.ID))
	}
	if !bytes.Equal(got.Value, want.Value) {
		d = append(d, fmt.Sprintf("Value %s, want %s", got.Value, want.Value))
	}
	if got.MsgID != want.MsgID {
		d = append(d, fmt.Sprintf("MsgID %q, want %q", got.MsgID, want.MsgID))
	}
	if got.Hash != want.Hash {
		d = append(d, fmt.Sprintf("Hash %s, want %s", got.Hash, want.Hash))
	}
	if !want.IngestedAt.IsZero() && !near(got.IngestedAt, want.IngestedAt, timeSlack) {
		d = append(d, fmt.Sprintf("IngestedAt %v, want %v", got.IngestedAt, want.IngestedAt))
	}
	return strings.Join(d, "; ")
}

func (e *env) checkItems(what string, got, want []baton.Item) {
	e.t.Helper()
	if len(got) != len(want) {
		e.t.Fatalf("%s: %d items %v, want %d %v", what, len(got), seqsOf(got), len(want), seqsOf(want))
	}
	for i := range got {
		if d := diffItem(got[i], want[i]); d != "" {
			e.t.Fatalf("%s: item %d: %s", what, i, d)
		}
	}
}

func seqsOf(its []baton.Item) []uint64 {
	out := make([]uint64, len(its))
	for i, it := range its {
		out[i] = it.Seq
	}
	return out
}

func diffLeaf(got, want baton.Leaf) string {
	if got.Topic != want.Topic || got.Seq != want.Seq || got.ItemHash != want.ItemHash ||
		got.Epoch != want.Epoch || got.Publisher != want.Publisher || !got.At.Equal(want.At) {
		return fmt.Sprintf("got %+v, want %+v", got, want)
	}
	return ""
}

func (e *env) checkLeaves(what string, got, want []baton.Leaf) {
	e.t.Helper()
	if len(got) != len(want) {
		e.t.Fatalf("%s: %d leaves, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := diffLeaf(got[i], want[i]); d != "" {
			e.t.Fatalf("%s: leaf %d: %s [C4]", what, i, d)
		}
	}
}

// checkPublished checks published items against the items and the lease
// that committed them.
func (e *env) checkPublished(what string, got []baton.Published, want []baton.Item, l baton.Lease) {
	e.t.Helper()
	if len(got) != len(want) {
		e.t.Fatalf("%s: %d published, want %d %v", what, len(got), len(want), seqsOf(want))
	}
	for i, p := range got {
		if d := diffItem(p.Item, want[i]); d != "" {
			e.t.Fatalf("%s: published %d: %s", what, i, d)
		}
		if p.Epoch != l.Epoch || p.Publisher != l.Holder {
			e.t.Fatalf("%s: published %d: epoch %d publisher %q, want %d %q [C4]", what, i, p.Epoch, p.Publisher, l.Epoch, l.Holder)
		}
		if p.PublishedAt.IsZero() {
			e.t.Fatalf("%s: published %d: zero PublishedAt [C4]", what, i)
		}
	}
}

// checkCursor checks a cursor against the last committed item.
func (e *env) checkCursor(what string, c baton.Cursor, topic string, last baton.Item, epoch uint64) {
	e.t.Helper()
	if c.Topic != topic || c.Seq != last.Seq || c.Hash != last.Hash || c.Epoch != epoch {
		e.t.Fatalf("%s: cursor {%s %d %s epoch %d}, want {%s %d %s epoch %d} [C3]",
			what, c.Topic, c.Seq, c.Hash, c.Epoch, topic, last.Seq, last.Hash, epoch)
	}
	if c.UpdatedAt.IsZero() {
		e.t.Fatalf("%s: cursor has zero UpdatedAt [C3]", what)
	}
}

// checkRecord checks the fields of a release record that do not depend on
// how the lease ended.
func (e *env) checkRecord(what string, r baton.ReleaseRecord, l baton.Lease, reason baton.ReleaseReason, lastSeq uint64, lastHash baton.Hash) {
	e.t.Helper()
	if r.Topic != l.Topic || r.Holder != l.Holder || r.Epoch != l.Epoch || r.Reason != reason {
		e.t.Fatalf("%s: record {%s %s epoch %d %s}, want {%s %s epoch %d %s}",
			what, r.Topic, r.Holder, r.Epoch, r.Reason, l.Topic, l.Holder, l.Epoch, reason)
	}
	if r.LastSeq != lastSeq || r.LastHash != lastHash {
		e.t.Fatalf("%s: record cursor (%d, %s), want (%d, %s) [L5]", what, r.LastSeq, r.LastHash, lastSeq, lastHash)
	}
	e.checkNow(what+": record At", r.At)
	if r.At.Before(l.AcquiredAt.Add(-timeSlack)) {
		e.t.Fatalf("%s: record At %v before the lease was acquired (%v)", what, r.At, l.AcquiredAt)
	}
	if reason == baton.ReasonExpired && !near(r.At, l.ExpiresAt, timeSlack) {
		e.t.Fatalf("%s: expired record At %v, want the lease's ExpiresAt %v [L5]", what, r.At, l.ExpiresAt)
	}
}

// checkNoSuccessor checks that a record has no successor yet.
func (e *env) checkNoSuccessor(what string, r baton.ReleaseRecord) {
	e.t.Helper()
	if r.Successor != "" || r.SuccessorEpoch != 0 || !r.SuccessorAt.IsZero() || r.Handover() != -1 {
		e.t.Fatalf("%s: record of epoch %d has a successor (%q, %d, %v) but none acquired [L9]",
			what, r.Epoch, r.Successor, r.SuccessorEpoch, r.SuccessorAt)
	}
}

// checkSuccessor checks the successor fields of a record against the lease
// that followed.
func (e *env) checkSuccessor(what string, r baton.ReleaseRecord, next baton.Lease) {
	e.t.Helper()
	if r.Successor != next.Holder || r.SuccessorEpoch != next.Epoch {
		e.t.Fatalf("%s: record of epoch %d: successor (%q, %d), want (%q, %d) [L9]",
			what, r.Epoch, r.Successor, r.SuccessorEpoch, next.Holder, next.Epoch)
	}
	if !near(r.SuccessorAt, next.AcquiredAt, timeSlack) {
		e.t.Fatalf("%s: record of epoch %d: SuccessorAt %v, want the successor's AcquiredAt %v [L9]",
			what, r.Epoch, r.SuccessorAt, next.AcquiredAt)
	}
	if r.Handover() < 0 {
		e.t.Fatalf("%s: record of epoch %d: Handover() = %v, want >= 0", what, r.Epoch, r.Handover())
	}
}

// onlyRecord returns the single record of epoch, failing if there is not
// exactly one.
func (e *env) onlyRecord(what string, recs []baton.ReleaseRecord, epoch uint64) baton.ReleaseRecord {
	e.t.Helper()
	var found []baton.ReleaseRecord
	for _, r := range recs {
		if r.Epoch == epoch {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		e.t.Fatalf("%s: %d release records for epoch %d, want exactly 1 (all: %+v)", what, len(found), epoch, recs)
	}
	return found[0]
}
