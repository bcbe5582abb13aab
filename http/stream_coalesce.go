package http

import "time"

// Coalescing: a busy stream's writes are spaced so that each carries more
// events. Writing one event per write to each of many streams costs a
// system call per event and stream (on loopback about 10 µs each, with the
// receiver's TCP work), and a server that writes as soon as each event is
// ready spends every core on it and still falls behind: at 1,000 streams
// and 400 items/s each write carried one or two events and the terminals'
// p99 passed 300 ms (docs/benchmarks.md "Coalesced writes").
//
// The rule: a stream that wrote less than the gap ago waits until the gap
// has passed since that write, then writes everything ready at once. A
// stream that has been quiet for the gap writes at once, so a lone event,
// and every event of a slow stream, goes out with no wait. The gap grows
// with the streams that are busy: coalescePerStream for each stream that
// wrote in the last coalesceWindow (about twice what writing it once
// costs on loopback, so that the writes of a round over them all take
// about half a core), up to Config.StreamCoalesce. With the 33 streams per
// node of the latency scenario it is 1.3 ms; from 1,000 streams it is
// 40 ms. Half the gap (20 µs, 20 ms) kept the writes of 1,000 streams at a
// whole core and the node and its readers failed at 100 to 400 items/s;
// this one carried 1.6M deliveries/s (docs/benchmarks.md "A wider gap").

const (
	// coalescePerStream is the gap's share per busy stream.
	coalescePerStream = 40 * time.Microsecond
	// coalesceWindow is how long a write counts a stream as busy.
	coalesceWindow = 100 * time.Millisecond
	// DefaultStreamCoalesce is the default longest gap.
	DefaultStreamCoalesce = 40 * time.Millisecond
)

// CoalesceGap is the gap between two writes of a stream when busy
// streams wrote in the last coalesceWindow: busy × coalescePerStream, at
// most max (none if max <= 0). bench's raw broadcaster spaces its writes
// by the same rule, so that it stays the ceiling.
func CoalesceGap(busy int, max time.Duration) time.Duration {
	return gapOf(busy, coalescePerStream, max)
}

// gapOf is busy × perStream, at most max; none if max <= 0.
func gapOf(busy int, perStream, max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	return min(time.Duration(busy)*perStream, max)
}

// coalescer counts the busy streams and gives the gap. It is guarded by
// streamer.mu; times are ns since streamer.epoch.
type coalescer struct {
	max       time.Duration // Config.StreamCoalesce; <= 0: off
	perStream time.Duration // coalescePerStream; tests make it longer
	winStart  int64         // start of the current window
	inWin     int           // streams that wrote in the current window
	last      int           // streams that wrote in the window before, if it just ended
}

// wrote counts a write ending at now by a stream; counted is the stream's
// own record of the window it was last counted in.
func (c *coalescer) wrote(now int64, counted *int64) {
	if c.max <= 0 {
		return
	}
	if now-c.winStart >= int64(coalesceWindow) {
		c.last = 0
		if now-c.winStart < 2*int64(coalesceWindow) {
			c.last = c.inWin
		}
		c.winStart, c.inWin = now, 0
	}
	if *counted != c.winStart+1 { // +1: a zero record is no window
		*counted = c.winStart + 1
		c.inWin++
	}
}

// gap is the current gap, in ns.
func (c *coalescer) gap() int64 {
	return int64(gapOf(max(c.last, c.inWin), c.perStream, c.max))
}

// wait is how long s waits at now before it writes: 0 if the gap has
// passed since its last write, or it has not written yet.
func (c *coalescer) wait(now int64, s *eventStream) time.Duration {
	g, lastWrite := c.gap(), s.lastWrite
	if g == 0 || s.counted == 0 || now-lastWrite >= g {
		return 0
	}
	return time.Duration(lastWrite + g - now)
}

// CoalesceGap is the coalescing gap of busy streams' writes now (for
// metrics): 0 when few streams are busy or coalescing is off.
func (s *Server) CoalesceGap() time.Duration {
	st := s.streams
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.now()-st.co.winStart >= 2*int64(coalesceWindow) {
		return 0 // nothing wrote for two windows
	}
	return time.Duration(st.co.gap())
}
