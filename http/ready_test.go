package http

import (
	"context"
	"encoding/json"
	"io"
	nethttp "net/http"
	"sync/atomic"
	"testing"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/wire"
)

// TestReadyzReflectsProblems: /readyz answers 503 with every problem the
// node's status names (not only a store that does not answer), and 200
// once there is none.
func TestReadyzReflectsProblems(t *testing.T) {
	var problems atomic.Pointer[[]baton.Problem]
	e := newEnv(t, nil, hub.Options{}, Config{Status: func(context.Context, int) (wire.Status, error) {
		return wire.Status{NodeStatus: baton.NodeStatus{Problems: *problems.Load()}}, nil
	}})
	get := func() (int, wire.NotReady) {
		resp, err := nethttp.Get(e.url + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var nr wire.NotReady
		if resp.StatusCode != 200 {
			if err := json.Unmarshal(b, &nr); err != nil || nr.Error == nil {
				t.Fatalf("503 body %q: %v", b, err)
			}
		}
		return resp.StatusCode, nr
	}
	ps := []baton.Problem{{Kind: baton.ProblemStalled, Topic: "q", Message: "cursor still"}, {Kind: baton.ProblemLedger, Topic: "r", Message: "1 witness alarm"}}
	problems.Store(&ps)
	status, nr := get()
	if status != 503 || nr.Error.Code != baton.CodeUnavailable || len(nr.Problems) != 2 || nr.Problems[1].Topic != "r" ||
		nr.Error.Message != "not ready: stalled (q), ledger (r)" {
		t.Errorf("with problems: %d %+v %+v", status, nr.Error, nr.Problems)
	}
	none := []baton.Problem{}
	problems.Store(&none)
	if status, _ := get(); status != 200 {
		t.Errorf("without problems: %d", status)
	}
}
