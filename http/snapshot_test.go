package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	nethttp "net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/wire"
)

// publishIDs publishes one update per id among n ids (k00..), a tenth of
// them tombstones when tombstones is set.
func (p *publisher) publishIDs(rng *rand.Rand, count, n int, tombstones bool) {
	p.tb.Helper()
	ups := make([]baton.Update, count)
	for i := range ups {
		p.n++
		u := baton.Update{ID: fmt.Sprintf("k%03d", rng.IntN(n)), Value: json.RawMessage(fmt.Sprint(p.n)), MsgID: fmt.Sprintf("m%d", p.n)}
		if tombstones && rng.IntN(10) == 0 {
			u.Value, u.Deleted = json.RawMessage("null"), true
		}
		ups[i] = u
	}
	if _, err := p.st.Append(context.Background(), p.topic, ups); err != nil {
		p.tb.Fatalf("append: %v", err)
	}
	p.commitAll()
}

// publishing publishes batches of 1 to 10 updates of n ids (publishIDs,
// tombstones among them) until the function it returns is called, which
// waits for the last batch. It stays at most publishAhead items ahead of
// the seq last passed to read: a producer with no bound outruns a reader
// on a busy machine, and the server then ends it as a slow terminal.
func (p *publisher) publishing(seed uint64, n int) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	p.progress = make(chan struct{}, 1)
	go func() {
		defer close(done)
		rng := rand.New(rand.NewPCG(seed, seed+1))
		for {
			if uint64(p.n) > p.readSeq.Load()+publishAhead {
				select {
				case <-quit:
					return
				case <-p.progress:
				}
				continue
			}
			select {
			case <-quit:
				return
			default:
			}
			p.publishIDs(rng, 1+rng.IntN(10), n, true)
		}
	}()
	return func() { close(quit); <-done }
}

// publishAhead bounds how far publishing runs ahead of its reader: well
// inside a terminal's live queue (hub.DefaultBufferItems), and enough
// for commits to land between the pages of a snapshot.
const publishAhead = 1000

// read tells publishing that a reader has reached seq.
func (p *publisher) read(seq uint64) {
	if seq > p.readSeq.Load() {
		p.readSeq.Store(seq)
	}
	select {
	case p.progress <- struct{}{}:
	default:
	}
}

// stateAt is each id's latest seq as of seq, from the published items.
func stateAt(t testing.TB, st baton.Store, topic string, seq uint64) map[string]uint64 {
	t.Helper()
	want := make(map[string]uint64)
	for after := uint64(0); after < seq; {
		ps, err := st.Published(context.Background(), topic, after, 1000)
		if err != nil || len(ps) == 0 {
			t.Fatalf("published after %d: %d items, %v", after, len(ps), err)
		}
		for _, p := range ps {
			switch {
			case p.Seq > seq:
			case p.Deleted:
				delete(want, p.ID)
			default:
				want[p.ID] = p.Seq
			}
		}
		after = ps[len(ps)-1].Seq
	}
	return want
}

func TestSnapshotRoute(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{})
	p := newPublisher(t, e.store, testTopic)
	rng := rand.New(rand.NewPCG(1, 2))
	p.publishIDs(rng, 300, 40, true)
	got := make(map[string]uint64)
	after, pages := "", 0
	for {
		var page wire.SnapshotResponse
		resp := e.do("GET", "/v1/topics/"+testTopic+"/snapshot?limit=7&after_id="+after, nil, nil, &page)
		if resp.StatusCode != 200 || page.Seq != 300 || len(page.Items) > 7 {
			t.Fatalf("page after %q: %d, seq %d, %d items", after, resp.StatusCode, page.Seq, len(page.Items))
		}
		for _, it := range page.Items {
			if it.ID <= after || it.Deleted || !it.Verify() {
				t.Fatalf("page after %q: item %+v out of order, a tombstone, or not verified", after, it)
			}
			got[it.ID], after = it.Seq, it.ID
		}
		pages++
		if page.NextAfterID == "" {
			break
		}
		if page.NextAfterID != after {
			t.Fatalf("next_after_id %q, last id %q", page.NextAfterID, after)
		}
	}
	if want := stateAt(t, e.store, testTopic, 300); fmt.Sprint(got) != fmt.Sprint(want) || pages < 3 {
		t.Fatalf("snapshot in %d pages:\n got %v\nwant %v", pages, got, want)
	}
	var empty wire.SnapshotResponse
	if resp := e.do("GET", "/v1/topics/unknown/snapshot", nil, nil, &empty); resp.StatusCode != 200 || empty.Seq != 0 || empty.Items == nil || len(empty.Items) != 0 {
		t.Fatalf("unknown topic: %d %+v", resp.StatusCode, empty)
	}
}

func TestSnapshotBadInput(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{})
	long := strings.Repeat("x", baton.MaxIDLen+1)
	for _, c := range []struct{ path, field string }{
		{"/v1/topics/quotes/snapshot?limit=0", "limit"},
		{"/v1/topics/quotes/snapshot?limit=x", "limit"},
		{"/v1/topics/quotes/snapshot?limit=-1", "limit"},
		{fmt.Sprintf("/v1/topics/quotes/snapshot?limit=%d", MaxSnapshotLimit+1), "limit"},
		{"/v1/topics/quotes/snapshot?after_id=" + long, "after_id"},
		{"/v1/topics/bad!topic/snapshot", "topic"},
		{"/v1/topics/quotes/events?snapshot=2", "snapshot"},
		{"/v1/topics/quotes/events?snapshot=1&after=3", "snapshot"},
	} {
		var bad wire.ErrorResponse
		resp := e.do("GET", c.path, nil, nil, &bad)
		if resp.StatusCode != 400 || bad.Error == nil || bad.Error.Code != baton.CodeInvalid || bad.Error.Field != c.field {
			t.Errorf("GET %s: %d %+v, want 400 field %s", clip(c.path, 80), resp.StatusCode, bad.Error, c.field)
		}
	}
}

// TestEventsSnapshotThenLive opens streams with ?snapshot=1, on both
// writers, while items are published, with snapshot pages small enough
// that commits land between them: each stream's snapshot events, applied
// in order, are the state as of snapshot_end's seq, and the live items
// follow it with no gap and no duplicate. A reconnection with the end's id
// resumes the live stream and sends no snapshot.
func TestEventsSnapshotThenLive(t *testing.T) {
	defer func(n int) { snapshotPage = n }(snapshotPage)
	snapshotPage = 5
	for _, writer := range []string{SSEWriterPool, SSEWriterGoroutine} {
		t.Run(writer, func(t *testing.T) {
			e := newEnv(t, nil, hub.Options{}, Config{SSEWriter: writer})
			p := newPublisher(t, e.store, testTopic)
			rng := rand.New(rand.NewPCG(5, 6))
			p.publishIDs(rng, 400, 120, true)
			defer p.publishing(7, 120)()
			for round := range 3 {
				s := openStream(t, nethttp.DefaultClient, eventsURL(e.url, testTopic, "snapshot=1"), "").run()
				got := make(map[string]uint64)
				var seq uint64
				for {
					ev, _ := s.next(t, 10*time.Second)
					if ev.Type == wire.EventSnapshotEnd {
						end, err := ev.SnapshotEnd()
						if err != nil || string(ev.ID) != fmt.Sprint(end.Seq) {
							t.Fatalf("snapshot_end %q id %q: %v", ev.Data, ev.ID, err)
						}
						seq = end.Seq
						p.read(seq)
						break
					}
					it, err := ev.SnapshotItem()
					if err != nil || len(ev.ID) != 0 {
						t.Fatalf("round %d: event %q id %q data %q in the snapshot", round, ev.Type, ev.ID, ev.Data)
					}
					if it.Deleted {
						delete(got, it.ID)
					} else {
						got[it.ID] = it.Seq
					}
				}
				if want := stateAt(t, e.store, testTopic, seq); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("round %d: snapshot at %d:\n got %v\nwant %v", round, seq, got, want)
				}
				for next := seq + 1; next <= seq+50; next++ {
					ev, _ := s.next(t, 10*time.Second)
					if ev.Type != wire.EventItem {
						t.Fatalf("round %d: event %q after the snapshot, want item %d (%v)", round, ev.Type, next, s.ended())
					}
					if it, err := ev.Item(); err != nil || it.Seq != next {
						t.Fatalf("round %d: item %d after snapshot_end %d, want %d (%v)", round, it.Seq, seq, next, err)
					}
					p.read(next)
				}
				s.close()
				// Reconnecting with the end's id: the live stream after it.
				r := openStream(t, nethttp.DefaultClient, eventsURL(e.url, testTopic, "snapshot=1"), fmt.Sprint(seq)).run()
				if ev, _ := r.next(t, 10*time.Second); ev.Type != wire.EventItem {
					t.Fatalf("round %d: resumed stream starts with %q, want item %d (%v)", round, ev.Type, seq+1, r.ended())
				} else if it, _ := ev.Item(); it.Seq != seq+1 {
					t.Fatalf("round %d: resumed at %d, want %d", round, it.Seq, seq+1)
				}
				r.close()
			}
		})
	}
}

// TestMultiStreamSnapshot opens a stream of three named topics with
// ?snapshot=1 on both writers: the two at position 0 start with their
// snapshots (events naming their topic, then snapshot_end with the
// stream's id at the snapshot's seq), the third resumes after its
// position; the live items of each topic then follow its own position,
// and a reconnection with the last id resumes without a snapshot.
func TestMultiStreamSnapshot(t *testing.T) {
	defer func(n int) { snapshotPage = n }(snapshotPage)
	snapshotPage = 5
	forEachWriter(t, func(t *testing.T, writer string) {
		e := newEnv(t, nil, hub.Options{}, Config{SSEWriter: writer})
		rng := rand.New(rand.NewPCG(9, 10))
		named := []string{"a", "b", "c"}
		pubs := map[string]*publisher{}
		for _, tp := range named {
			pubs[tp] = newPublisher(t, e.store, tp)
			pubs[tp].publishIDs(rng, 60, 25, true)
		}
		s := openStream(t, nethttp.DefaultClient, multiURL(e.url, named, "snapshot=1&positions=c:50"), "").run()
		got := map[string]map[string]uint64{"a": {}, "b": {}}
		ends := map[string]uint64{}
		var lastID string
		for len(ends) < 2 {
			ev, ok := s.next(t, 10*time.Second)
			if !ok {
				t.Fatal("stream ended in the snapshots")
			}
			switch ev.Type {
			case wire.EventSnapshot:
				var it wire.TopicItem
				// No id line of its own: the last id seen stays (SSE).
				if err := json.Unmarshal(ev.Data, &it); err != nil || string(ev.ID) != lastID || got[it.Topic] == nil {
					t.Fatalf("snapshot event id %q data %s: %v", ev.ID, ev.Data, err)
				}
				if _, done := ends[it.Topic]; done {
					t.Fatalf("snapshot event of %s after its end", it.Topic)
				}
				if it.Deleted {
					delete(got[it.Topic], it.ID)
				} else {
					got[it.Topic][it.ID] = it.Seq
				}
			case wire.EventSnapshotEnd:
				var end wire.SnapshotEnd
				if err := json.Unmarshal(ev.Data, &end); err != nil || got[end.Topic] == nil {
					t.Fatalf("snapshot_end %s: %v", ev.Data, err)
				}
				sp, err := wire.ParseStreamID(string(ev.ID), named)
				if err != nil || sp.Named[slices.Index(named, end.Topic)] != end.Seq {
					t.Fatalf("snapshot_end %s: id %q (%+v, %v)", ev.Data, ev.ID, sp, err)
				}
				ends[end.Topic], lastID = end.Seq, string(ev.ID)
			default:
				t.Fatalf("event %q %s before the snapshots ended", ev.Type, ev.Data)
			}
		}
		for tp, seq := range ends {
			if want := stateAt(t, e.store, tp, seq); fmt.Sprint(got[tp]) != fmt.Sprint(want) {
				t.Fatalf("snapshot of %s at %d:\n got %v\nwant %v", tp, seq, got[tp], want)
			}
		}
		// Then each topic's items after its own position.
		next := map[string]uint64{"a": ends["a"] + 1, "b": ends["b"] + 1, "c": 51}
		for _, tp := range named {
			pubs[tp].publishIDs(rng, 3, 25, false)
		}
		for range 3 + 3 + 3 + 10 { // c has 10 kept items after 50
			d, ev := nextTopicItem(t, s)
			if d.Seq != next[d.Topic] {
				t.Fatalf("%s: item %d, want %d", d.Topic, d.Seq, next[d.Topic])
			}
			next[d.Topic]++
			lastID = string(ev.ID)
		}
		s.close()
		r := openStream(t, nethttp.DefaultClient, multiURL(e.url, named, "snapshot=1"), lastID).run()
		pubs["b"].publishIDs(rng, 1, 25, false)
		if d, _ := nextTopicItem(t, r); d.Topic != "b" || d.Seq != next["b"] {
			t.Fatalf("resumed with %s/%d, want b/%d", d.Topic, d.Seq, next["b"])
		}
		r.close()
	})
}

// TestWebSocketSnapshot subscribes with "snapshot": true while items are
// published: "snapshot" frames of the topic, applied in order, are its
// state as of snapshot_end's seq, then "subscribed", then the items after
// that seq with no gap and no duplicate.
func TestWebSocketSnapshot(t *testing.T) {
	defer func(n int) { snapshotPage = n }(snapshotPage)
	snapshotPage = 5
	e := newEnv(t, nil, hub.Options{}, Config{})
	p := newPublisher(t, e.store, testTopic)
	rng := rand.New(rand.NewPCG(11, 12))
	p.publishIDs(rng, 200, 60, true)
	defer p.publishing(13, 60)()
	w := dialWS(t, e.url, nil)
	w.send(t, wire.ClientFrame{Type: wire.FrameSubscribe, Topic: testTopic, Snapshot: true, Ref: "s1"})
	got := make(map[string]uint64)
	var seq uint64
	for {
		f := w.next(t)
		if f.Type == wire.EventSnapshotEnd {
			if f.Topic != testTopic || f.Ref != "s1" {
				t.Fatalf("snapshot_end %+v", f)
			}
			seq = f.Seq
			p.read(seq)
			break
		}
		h := baton.HashItem(f.Topic, baton.Update{ID: f.ID, Value: f.Value, MsgID: f.MsgID, Deleted: f.Deleted})
		if f.Type != wire.EventSnapshot || f.Topic != testTopic || h != f.Hash {
			t.Fatalf("frame %+v in the snapshot (or not verified)", f)
		}
		if f.Deleted {
			delete(got, f.ID)
		} else {
			got[f.ID] = f.Seq
		}
	}
	if want := stateAt(t, e.store, testTopic, seq); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("snapshot at %d:\n got %v\nwant %v", seq, got, want)
	}
	if f := w.next(t); f.Type != wire.FrameSubscribed || f.Ref != "s1" {
		t.Fatalf("frame %+v after snapshot_end, want subscribed", f)
	}
	for next := seq + 1; next <= seq+50; next++ {
		if f := w.next(t); f.Type != wire.EventItem || f.Topic != testTopic || f.Seq != next {
			t.Fatalf("frame %s %s/%d after snapshot_end %d, want item %d", f.Type, f.Topic, f.Seq, seq, next)
		}
		p.read(next)
	}
}

// TestWebSocketSnapshotMessages: a snapshot page larger than turnBytes
// goes in several messages, each of whole frames and none much larger
// than turnBytes.
func TestWebSocketSnapshotMessages(t *testing.T) {
	e := newEnv(t, nil, hub.Options{}, Config{})
	p := newPublisher(t, e.store, testTopic)
	p.appendN(40, `"`+strings.Repeat("v", 16<<10)+`"`) // 40 ids of 16 KiB: one page
	p.commitAll()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.url, "http")+"/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(wire.MaxEventLine)
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","topic":"`+testTopic+`","snapshot":true}`)); err != nil {
		t.Fatal(err)
	}
	msgs, frames := 0, 0
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(msg, []byte(`"type":"snapshot_end"`)) {
			break
		}
		msgs++
		frames += bytes.Count(msg, []byte("\n"))
		if len(msg) > turnBytes+(20<<10) || msg[len(msg)-1] != '\n' {
			t.Fatalf("message %d: %d bytes, ends with %q", msgs, len(msg), msg[len(msg)-1])
		}
	}
	if frames != 40 || msgs < 3 {
		t.Fatalf("%d snapshot frames in %d messages, want 40 in at least 3", frames, msgs)
	}
}

// patternSnapshotCheck follows the topics of a pattern stream or socket
// through their snapshots and items: a topic's snapshot events come
// before its end and none after; its items start after its end's seq (or
// at 1 for a topic created later) with no gap and no duplicate.
type patternSnapshotCheck struct {
	t    *testing.T
	got  map[string]map[string]uint64 // each topic's snapshot so far
	ends map[string]uint64
	next map[string]uint64 // each topic's next item
}

func newPatternSnapshotCheck(t *testing.T, topics ...string) *patternSnapshotCheck {
	c := &patternSnapshotCheck{t: t, got: map[string]map[string]uint64{}, ends: map[string]uint64{}, next: map[string]uint64{}}
	for _, tp := range topics {
		c.got[tp] = map[string]uint64{}
	}
	return c
}

func (c *patternSnapshotCheck) snapshot(topic, id string, seq uint64, deleted bool) {
	c.t.Helper()
	if _, ok := c.got[topic]; !ok {
		c.t.Fatalf("snapshot event of %s: not a topic the pattern selected when it began", topic)
	}
	if _, done := c.ends[topic]; done {
		c.t.Fatalf("snapshot event of %s after its end", topic)
	}
	if deleted {
		delete(c.got[topic], id)
	} else {
		c.got[topic][id] = seq
	}
}

func (c *patternSnapshotCheck) end(topic string, seq uint64) {
	c.t.Helper()
	if _, ok := c.got[topic]; !ok {
		c.t.Fatalf("snapshot_end of %s: not a topic the pattern selected when it began", topic)
	}
	if _, done := c.ends[topic]; done {
		c.t.Fatalf("second snapshot_end of %s", topic)
	}
	c.ends[topic], c.next[topic] = seq, seq+1
}

func (c *patternSnapshotCheck) item(topic string, seq uint64) {
	c.t.Helper()
	want, ok := c.next[topic]
	if !ok {
		if _, snapped := c.got[topic]; snapped {
			c.t.Fatalf("item %s/%d before its snapshot ended", topic, seq)
		}
		want = 1 // created after the stream began: from its beginning
	}
	if seq != want {
		c.t.Fatalf("item %s/%d, want %d", topic, seq, want)
	}
	c.next[topic] = seq + 1
}

// verify compares each snapshot with the state of its topic at its end.
func (c *patternSnapshotCheck) verify(st baton.Store) {
	c.t.Helper()
	for tp, got := range c.got {
		seq, ok := c.ends[tp]
		if !ok {
			c.t.Fatalf("no snapshot_end for %s", tp)
		}
		if want := stateAt(c.t, st, tp, seq); fmt.Sprint(got) != fmt.Sprint(want) {
			c.t.Fatalf("snapshot of %s at %d:\n got %v\nwant %v", tp, seq, got, want)
		}
	}
}

// TestPatternStreamSnapshot opens GET /v1/events?topic=q.*&snapshot=1
// while one of the topics it selects is published to, on both writers:
// each topic the pattern selects when the stream begins starts with its
// snapshot (events naming it, then snapshot_end with the stream's id at
// its seq), then its items after that seq; a topic created later starts
// at its beginning; a topic the pattern does not select is not sent. A
// reconnection with the last id resumes without a snapshot.
func TestPatternStreamSnapshot(t *testing.T) {
	defer func(n int) { snapshotPage = n }(snapshotPage)
	snapshotPage = 5
	forEachWriter(t, func(t *testing.T, writer string) {
		e := newEnv(t, nil, hub.Options{}, Config{SSEWriter: writer})
		rng := rand.New(rand.NewPCG(21, 22))
		pubs := map[string]*publisher{}
		for _, tp := range []string{"q.a", "q.b", "x.z"} {
			pubs[tp] = newPublisher(t, e.store, tp)
			pubs[tp].publishIDs(rng, 80, 25, true)
		}
		defer pubs["q.a"].publishing(23, 25)()
		s := openStream(t, nethttp.DefaultClient, multiURL(e.url, []string{"q.*"}, "snapshot=1"), "").run()
		c := newPatternSnapshotCheck(t, "q.a", "q.b")
		var lastID string
		created := false
		for len(c.ends) < 2 || c.next["q.a"] < c.ends["q.a"]+20 || c.next["q.b"] < c.ends["q.b"]+4 || c.next["q.c"] < 4 {
			if len(c.ends) == 2 && !created {
				created = true
				pubs["q.b"].publishIDs(rng, 3, 25, false)
				pubs["q.c"] = newPublisher(t, e.store, "q.c")
				pubs["q.c"].publishIDs(rng, 3, 25, false)
				pubs["x.z"].publishIDs(rng, 3, 25, false)
			}
			ev, ok := s.next(t, 10*time.Second)
			if !ok {
				t.Fatalf("stream ended: %v", s.ended())
			}
			switch ev.Type {
			case wire.EventSnapshot:
				var it wire.TopicItem
				if err := json.Unmarshal(ev.Data, &it); err != nil || string(ev.ID) != lastID {
					t.Fatalf("snapshot event id %q data %s: %v", ev.ID, ev.Data, err)
				}
				c.snapshot(it.Topic, it.ID, it.Seq, it.Deleted)
			case wire.EventSnapshotEnd:
				var end wire.SnapshotEnd
				if err := json.Unmarshal(ev.Data, &end); err != nil {
					t.Fatalf("snapshot_end %s: %v", ev.Data, err)
				}
				sp, err := wire.ParseStreamID(string(ev.ID), nil)
				if err != nil || sp.Found[end.Topic] != end.Seq {
					t.Fatalf("snapshot_end %s: id %q (%+v, %v)", ev.Data, ev.ID, sp, err)
				}
				c.end(end.Topic, end.Seq)
				if end.Topic == "q.a" {
					pubs["q.a"].read(end.Seq)
				}
			case wire.EventItem:
				var it wire.TopicItem
				if err := json.Unmarshal(ev.Data, &it); err != nil {
					t.Fatalf("item %s: %v", ev.Data, err)
				}
				c.item(it.Topic, it.Seq)
				if it.Topic == "q.a" {
					pubs["q.a"].read(it.Seq)
				}
			default:
				t.Fatalf("event %q %s", ev.Type, ev.Data)
			}
			lastID = string(ev.ID)
		}
		c.verify(e.store)
		s.close()
		r := openStream(t, nethttp.DefaultClient, multiURL(e.url, []string{"q.*"}, "snapshot=1"), lastID).run()
		pubs["q.b"].publishIDs(rng, 1, 25, false)
		for {
			d, _ := nextTopicItem(t, r)
			if d.Topic == "q.b" {
				if d.Seq != c.next["q.b"] {
					t.Fatalf("resumed with q.b/%d, want %d", d.Seq, c.next["q.b"])
				}
				break
			}
			if d.Topic != "q.a" || d.Seq < c.next["q.a"] {
				t.Fatalf("resumed with %s/%d: before where the stream was", d.Topic, d.Seq)
			}
		}
		r.close()
	})
}

// TestWebSocketPatternSnapshot subscribes to q.* with "snapshot": true
// while one of its topics is published to: each topic it selects starts
// with its "snapshot" frames and "snapshot_end" (with the subscribe's
// ref), then its items after that seq; "subscribed" for the pattern
// follows the snapshots; a topic created later starts at its beginning;
// a topic subscribed by name beforehand is not snapshotted again.
func TestWebSocketPatternSnapshot(t *testing.T) {
	defer func(n int) { snapshotPage = n }(snapshotPage)
	snapshotPage = 5
	e := newEnv(t, nil, hub.Options{}, Config{})
	rng := rand.New(rand.NewPCG(31, 32))
	pubs := map[string]*publisher{}
	for _, tp := range []string{"q.a", "q.b", "q.n", "x.z"} {
		pubs[tp] = newPublisher(t, e.store, tp)
		pubs[tp].publishIDs(rng, 80, 25, true)
	}
	w := dialWS(t, e.url, nil)
	w.send(t, wire.ClientFrame{Type: wire.FrameSubscribe, Topic: "q.n", After: 80, Ref: "n1"})
	if f := w.next(t); f.Type != wire.FrameSubscribed || f.Topic != "q.n" {
		t.Fatalf("frame %+v, want subscribed q.n", f)
	}
	defer pubs["q.a"].publishing(33, 25)()
	w.send(t, wire.ClientFrame{Type: wire.FrameSubscribe, Topic: "q.*", Snapshot: true, Ref: "p1"})
	c := newPatternSnapshotCheck(t, "q.a", "q.b")
	c.next["q.n"] = 81
	subscribed, created := false, false
	for !subscribed || c.next["q.a"] < c.ends["q.a"]+20 || c.next["q.b"] < c.ends["q.b"]+4 || c.next["q.c"] < 4 || c.next["q.n"] < 82 {
		if subscribed && !created {
			created = true
			for _, tp := range []string{"q.b", "q.n", "x.z"} {
				pubs[tp].publishIDs(rng, 3, 25, false)
			}
			pubs["q.c"] = newPublisher(t, e.store, "q.c")
			pubs["q.c"].publishIDs(rng, 3, 25, false)
		}
		f := w.next(t)
		switch f.Type {
		case wire.EventSnapshot:
			if h := baton.HashItem(f.Topic, baton.Update{ID: f.ID, Value: f.Value, MsgID: f.MsgID, Deleted: f.Deleted}); h != f.Hash {
				t.Fatalf("snapshot frame %+v not verified", f)
			}
			c.snapshot(f.Topic, f.ID, f.Seq, f.Deleted)
		case wire.EventSnapshotEnd:
			if f.Ref != "p1" {
				t.Fatalf("snapshot_end %+v, want ref p1", f)
			}
			c.end(f.Topic, f.Seq)
			if f.Topic == "q.a" {
				pubs["q.a"].read(f.Seq)
			}
		case wire.FrameSubscribed:
			if f.Topic != "q.*" || f.Ref != "p1" || len(c.ends) != 2 {
				t.Fatalf("frame %+v after %d snapshots, want subscribed q.* after 2", f, len(c.ends))
			}
			subscribed = true
		case wire.EventItem:
			c.item(f.Topic, f.Seq)
			if f.Topic == "q.a" {
				pubs["q.a"].read(f.Seq)
			}
		default:
			t.Fatalf("frame %+v", f)
		}
	}
	c.verify(e.store)
}
