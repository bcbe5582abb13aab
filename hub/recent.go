package hub

import "sync/atomic"

// A feed's recent frames: the last frames it delivered, consecutive, the
// newest at the feed's position. A terminal that starts or resumes near
// the head (a page reloaded, the clients of a node that ended reconnecting
// to another) catches up from them: no store read and no encoding of its
// own, the frames shared with every other terminal of the topic. Only
// behind them does a terminal read the store.
//
// Why it is exact: a terminal joins its feed (Hub.join) before it catches
// up, so every batch the feed delivers after the terminal read the recent
// frames reaches its queue; and the frames are exactly the batches
// delivered, in order, up to the feed's position (both under feed.mu). A
// jump of the feed's position (its start, a trimmed position: resync) or a
// cursor that went back (checkDeleted) empties them, as does the topic's
// deletion (EndTopic). A terminal that starts between a deletion and the
// node's notice of it (EndTopic at once on the node that served the
// DELETE, checkDeleted within about a second on the others) may get the
// deleted items, as the terminals open then did, and it ends with
// ErrTopicDeleted as they do.

// Bounds of a feed's recent frames: at most recentItems frames and about
// recentBytes bytes, whichever is reached first. Per followed topic, not
// per terminal; and all the feeds of a hub together keep at most
// Options.RecentBytes: a feed whose batch would take them past it keeps
// none (its terminals read the store, as without them).
const (
	recentItems = 256
	recentBytes = 64 << 10
	// DefaultRecentBytes is the default of Options.RecentBytes.
	DefaultRecentBytes = 64 << 20
)

// recentFrames holds a feed's recent frames; guarded by feed.mu. Slices
// handed out share its array and are never written after: add only appends
// past the end, and dropping from the front moves to a new array once the
// dropped part is as long as what is kept.
type recentFrames struct {
	frames  []Frame
	dropped int // frames dropped from the front of frames' array
	bytes   int
	// total counts the bytes of every feed's recent frames of the hub,
	// bounded by budget (nil: not counted).
	total  *atomic.Int64
	budget int64
}

// frameBytes is what a frame keeps alive: its encoding, its value and
// the rest of the item, roughly.
func frameBytes(f Frame) int {
	return len(f.SSE) + len(f.Item.Value) + len(f.Item.ID) + len(f.Item.MsgID) + 256
}

// add appends frames, which follow the newest frame (else the older ones
// are dropped first), and drops the oldest beyond the bounds.
func (r *recentFrames) add(frames []Frame) {
	if len(frames) == 0 {
		return
	}
	if n := len(r.frames); n > 0 && r.frames[n-1].Item.Seq+1 != frames[0].Item.Seq {
		r.reset()
	}
	if len(frames) > recentItems {
		frames = frames[len(frames)-recentItems:]
	}
	before := r.bytes
	r.frames = append(r.frames, frames...)
	for _, f := range frames {
		r.bytes += frameBytes(f)
	}
	k := 0
	for k < len(r.frames) && (len(r.frames)-k > recentItems || r.bytes > recentBytes) {
		r.bytes -= frameBytes(r.frames[k])
		k++
	}
	if r.total != nil && r.total.Add(int64(r.bytes-before)) > r.budget {
		r.reset() // past the hub's budget: none kept here
		return
	}
	if k == 0 {
		return
	}
	r.frames, r.dropped = r.frames[k:], r.dropped+k
	if r.dropped >= len(r.frames) {
		// The dropped frames' encodings stay alive until the array goes.
		r.frames, r.dropped = append([]Frame(nil), r.frames...), 0
	}
}

// reset forgets every frame.
func (r *recentFrames) reset() {
	if r.total != nil {
		r.total.Add(-int64(r.bytes))
	}
	*r = recentFrames{total: r.total, budget: r.budget}
}

// after returns up to limit frames that follow seq last, and whether the
// recent frames answer for last: they do when they begin at or before
// last+1 (what follows them, the feed delivers to its terminals). A last
// at or past the newest frame gets no frame and true.
func (r *recentFrames) after(last uint64, limit int) ([]Frame, bool) {
	n := len(r.frames)
	if n == 0 || last+1 < r.frames[0].Item.Seq {
		return nil, false
	}
	i := last + 1 - r.frames[0].Item.Seq
	if i >= uint64(n) {
		return nil, true
	}
	j := min(n, int(i)+limit)
	return r.frames[i:j:j], true
}

// covers reports whether seq last lies within the recent frames or right
// before them: an item the store has published.
func (r *recentFrames) covers(last uint64) bool {
	n := len(r.frames)
	return n > 0 && last+1 >= r.frames[0].Item.Seq && last <= r.frames[n-1].Item.Seq
}

// recentAfter is recentFrames.after under the feed's lock.
func (f *feed) recentAfter(last uint64, limit int) ([]Frame, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.recent.after(last, limit)
}

// recentCovers is recentFrames.covers under the feed's lock.
func (f *feed) recentCovers(last uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.recent.covers(last)
}

// seed gives the feed the frames a terminal read from the store, when the
// feed has no recent frames and they end at its position: the terminals
// that join after it catch up from them.
func (f *feed) seed(frames []Frame) {
	if len(frames) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.positioned && len(f.recent.frames) == 0 && frames[len(frames)-1].Item.Seq == f.end {
		f.recent.add(frames)
	}
}
