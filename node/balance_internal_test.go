package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/baton-pub/baton"
)

// TestExcess: a node above its share hands over its part of what the nodes
// below their share lack, so that the nodes above it together fill the
// room without overshooting, at most handoffPace a step.
func TestExcess(t *testing.T) {
	nl := func(node string, leases int) baton.NodeLease {
		return baton.NodeLease{Node: node, Remaining: time.Second, Leases: leases}
	}
	for _, c := range []struct {
		name   string
		mine   int
		others []baton.NodeLease
		closed map[string]bool
		want   int
	}{
		{"alone", 100, nil, nil, 0},
		{"balanced", 100, []baton.NodeLease{nl("b", 100), nl("c", 99)}, nil, 0},
		{"one joins three: a third of its lack each", 300, []baton.NodeLease{nl("b", 300), nl("c", 300), nl("d", 0)}, nil, 75},
		{"two join one: what it has above its share", 90, []baton.NodeLease{nl("b", 0), nl("c", 0)}, nil, 60},
		{"paced", 10_000, []baton.NodeLease{nl("b", 0)}, nil, handoffPace},
		{"a closed node takes nothing", 100, []baton.NodeLease{nl("b", 0)}, map[string]bool{"b": true}, 0},
		{"a lapsed node takes nothing", 100, []baton.NodeLease{{Node: "b", Leases: 0}}, nil, 0},
		{"below its share: gives nothing", 10, []baton.NodeLease{nl("b", 40), nl("c", 0)}, nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := &Node{cfg: Config{Node: "a"}, active: make(map[string]baton.Lease)}
			for i := range c.mine {
				n.active[fmt.Sprint(i)] = baton.Lease{}
			}
			if got := n.excess(c.others, c.closed); got != c.want {
				t.Errorf("excess = %d, want %d", got, c.want)
			}
		})
	}
}
