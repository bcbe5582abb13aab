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
