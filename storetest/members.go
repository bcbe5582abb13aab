package storetest

import (
	"bytes"
	"slices"
	"strings"
	"time"

	"github.com/baton-pub/baton"
)

func memberTests() []test {
	return []test{
		{"HeartbeatLists", testHeartbeatLists},
		{"HeartbeatReplaces", testHeartbeatReplaces},
		{"ShortTTLLapses", testMemberShortTTLLapses},
		{"LeaveRemoves", testLeaveRemoves},
		{"Sorted", testMembersSorted},
		{"InvalidInput", testMembersInvalidInput},
	}
}

func (e *env) node(tag string) string { return uniqueName(e.t, "node-"+tag) }

func testHeartbeatLists(e *env) {
	m := baton.Member{
		Node:      e.node("a"),
		Addr:      "10.0.0.7:7070",
		State:     baton.MemberPublishing,
		Leases:    3,
		PublicKey: []byte{1, 2, 3, 0, 255},
		// The store stamps these itself [M1].
		Heartbeat: time.Unix(1, 0),
		ExpiresAt: time.Unix(2, 0),
	}
	ttl := 30 * time.Second
	e.noErr(e.s.Heartbeat(e.ctx, m, ttl), "Heartbeat")
	got, ok := findMember(e.members(), m.Node)
	if !ok {
		e.t.Fatalf("Members does not list %s after its heartbeat", m.Node)
	}
	if got.Addr != m.Addr || got.State != m.State || got.Leases != m.Leases || !bytes.Equal(got.PublicKey, m.PublicKey) {
		e.t.Fatalf("member = %+v, want the fields of %+v", got, m)
	}
	e.checkNow("member Heartbeat [M1]", got.Heartbeat)
	if d := got.ExpiresAt.Sub(got.Heartbeat); !nearDur(d, ttl, timeSlack) {
		e.t.Fatalf("member ExpiresAt-Heartbeat = %v, want the ttl %v [M1]", d, ttl)
	}
}

func testHeartbeatReplaces(e *env) {
	m := baton.Member{Node: e.node("a"), Addr: "a:1", State: baton.MemberIdle}
	e.noErr(e.s.Heartbeat(e.ctx, m, liveTTL), "first Heartbeat")
	first, _ := findMember(e.members(), m.Node)
	m.State, m.Leases, m.Addr = baton.MemberFull, 5, "a:2"
	e.noErr(e.s.Heartbeat(e.ctx, m, 2*liveTTL), "second Heartbeat")
	var found []baton.Member
	for _, x := range e.members() {
		if x.Node == m.Node {
			found = append(found, x)
		}
	}
	if len(found) != 1 {
		e.t.Fatalf("Members lists %s %d times, want once [M1]", m.Node, len(found))
	}
	got := found[0]
	if got.State != baton.MemberFull || got.Leases != 5 || got.Addr != "a:2" {
		e.t.Fatalf("member after the second heartbeat = %+v, want its fields [M1]", got)
	}
	if got.Heartbeat.Before(first.Heartbeat) || !got.ExpiresAt.After(first.ExpiresAt) {
		e.t.Fatalf("second heartbeat (%v, expires %v) did not move on from the first (%v, %v)", got.Heartbeat, got.ExpiresAt, first.Heartbeat, first.ExpiresAt)
	}
}

func testMemberShortTTLLapses(e *env) {
	short := baton.Member{Node: e.node("short"), State: baton.MemberIdle}
	long := baton.Member{Node: e.node("long"), State: baton.MemberIdle}
	e.noErr(e.s.Heartbeat(e.ctx, long, liveTTL), "Heartbeat(long)")
	e.noErr(e.s.Heartbeat(e.ctx, short, liveTTL), "Heartbeat(short)")
	if _, ok := findMember(e.members(), short.Node); !ok {
		e.t.Fatalf("Members does not list %s", short.Node)
	}
	// A heartbeat with a short ttl replaces the long one [M1]; it lapses.
	e.noErr(e.s.Heartbeat(e.ctx, short, e.shortTTL), "Heartbeat(short, %v)", e.shortTTL)
	e.waitFor("the short-lived member to lapse", func() bool {
		_, ok := findMember(e.members(), short.Node)
		return !ok
	})
	if _, ok := findMember(e.members(), long.Node); !ok {
		e.t.Fatalf("the long-lived member %s lapsed too", long.Node)
	}
}

func testLeaveRemoves(e *env) {
	a := baton.Member{Node: e.node("a"), State: baton.MemberIdle}
	b := baton.Member{Node: e.node("b"), State: baton.MemberIdle}
	e.noErr(e.s.Heartbeat(e.ctx, a, liveTTL), "Heartbeat(a)")
	e.noErr(e.s.Heartbeat(e.ctx, b, liveTTL), "Heartbeat(b)")
	e.noErr(e.s.Leave(e.ctx, a.Node), "Leave(a)")
	ms := e.members()
	if _, ok := findMember(ms, a.Node); ok {
		e.t.Fatalf("Members lists %s right after it left", a.Node)
	}
	if _, ok := findMember(ms, b.Node); !ok {
		e.t.Fatalf("Leave(a) removed %s too", b.Node)
	}
	e.noErr(e.s.Leave(e.ctx, a.Node), "second Leave(a) [M2]")
	e.noErr(e.s.Leave(e.ctx, e.node("never")), "Leave of a node never seen [M2]")
	// A node that left may come back.
	e.noErr(e.s.Heartbeat(e.ctx, a, liveTTL), "Heartbeat(a) after Leave")
	if _, ok := findMember(e.members(), a.Node); !ok {
		e.t.Fatalf("Members does not list %s after it came back", a.Node)
	}
}

func testMembersSorted(e *env) {
	for _, tag := range []string{"c", "a", "b"} {
		e.noErr(e.s.Heartbeat(e.ctx, baton.Member{Node: e.node(tag), State: baton.MemberIdle}, liveTTL), "Heartbeat(%s)", tag)
	}
	ms := e.members()
	if !slices.IsSortedFunc(ms, func(x, y baton.Member) int { return strings.Compare(x.Node, y.Node) }) {
		var nodes []string
		for _, m := range ms {
			nodes = append(nodes, m.Node)
		}
		e.t.Fatalf("Members not sorted by node: %v [M2]", nodes)
	}
}

func testMembersInvalidInput(e *env) {
	err := e.s.Heartbeat(e.ctx, baton.Member{State: baton.MemberIdle}, liveTTL)
	e.wantErr(err, baton.ErrInvalid, "Heartbeat without a node [M1]")
	e.wantField(err, "node", "Heartbeat without a node [M1]")
	x := e.node("x")
	for _, ttl := range []time.Duration{0, -time.Second} {
		err = e.s.Heartbeat(e.ctx, baton.Member{Node: x, State: baton.MemberIdle}, ttl)
		e.wantErr(err, baton.ErrInvalid, "Heartbeat with ttl %v [M1]", ttl)
		e.wantField(err, "ttl", "Heartbeat with ttl %v [M1]", ttl)
	}
	if _, ok := findMember(e.members(), x); ok {
		e.t.Fatal("a refused heartbeat registered the member")
	}
	err = e.s.Leave(e.ctx, "")
	e.wantErr(err, baton.ErrInvalid, "Leave(\"\") [M2]")
	e.wantField(err, "node", "Leave(\"\") [M2]")
}
