package ledger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	bhttp "github.com/baton-pub/baton/http"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/ledger"
	"github.com/baton-pub/baton/wire"
)

func get(t testing.TB, url string, v any) int {
	t.Helper()
	resp, err := nethttp.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v: %s", url, err, b)
		}
	}
	return resp.StatusCode
}

// TestHTTPRoutes serves the ledger routes from a witness and checks their
// answers and errors; the proof is verified as a terminal would, and the
// latency of the proof route is measured.
func TestHTTPRoutes(t *testing.T) {
	m := memstore.New(nil)
	e := engine{name: "memstore", open: func(t *testing.T) baton.Store { return m.Handle() }}
	const n = 300
	nodes := runCluster(t, e, "web", n)
	st := nodes[1].store
	h := hub.New(st, hub.Options{})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	api, err := bhttp.NewServer(bhttp.Config{Store: st, Hub: h, Ledger: nodes[1].witness})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	defer srv.Close()
	base := srv.URL + "/v1/topics/web"

	var cp bhttp.CheckpointResponse
	if code := get(t, base+"/checkpoint", &cp); code != 200 || cp.Size != n || len(cp.Cosignatures) != 2 {
		t.Fatalf("checkpoint: %d %+v", code, cp)
	}
	body, signers, err := ledger.OpenPinned([]byte(cp.Note), pinned(t, nodes...))
	if err != nil || body.Root != cp.Root || len(signers) != 3 {
		t.Fatalf("checkpoint note: %+v %v %v", body, signers, err)
	}
	var p ledger.Proof
	if code := get(t, base+"/items/77/proof", &p); code != 200 {
		t.Fatalf("proof: %d", code)
	}
	if _, err := ledger.VerifyProof(p, "web", 77, pinned(t, nodes[2])); err != nil {
		t.Fatalf("proof from HTTP: %v", err)
	}
	var c ledger.Consistency
	if code := get(t, base+"/consistency?from=10&to=300", &c); code != 200 || len(c.Hashes) == 0 || c.ToRoot != cp.Root {
		t.Fatalf("consistency: %d %+v", code, c)
	}
	for _, tc := range []struct {
		path string
		code int
		msg  string
	}{
		{"/items/0/proof", 400, "start at 1"},
		{"/items/x/proof", 400, "seq"},
		{fmt.Sprintf("/items/%d/proof", n+1), 404, "not in a checkpoint yet"},
		{"/consistency", 400, "from"},
		{"/consistency?from=20&to=10", 400, "above"},
		{"/consistency?from=1&to=999", 404, "not in a checkpoint yet"},
	} {
		var er wire.ErrorResponse
		if code := get(t, base+tc.path, &er); code != tc.code || er.Error == nil || !strings.Contains(er.Error.Message, tc.msg) {
			t.Errorf("GET %s: %d %+v, want %d with %q", tc.path, code, er.Error, tc.code, tc.msg)
		}
	}
	var er wire.ErrorResponse
	if code := get(t, srv.URL+"/v1/topics/other/checkpoint", &er); code != 404 {
		t.Errorf("checkpoint of an unknown topic: %d", code)
	}

	// Latency of the proof route, over HTTP on loopback.
	client := &nethttp.Client{Transport: &nethttp.Transport{MaxIdleConnsPerHost: 1}}
	durs := make([]time.Duration, 0, 2000)
	for i := 0; i < 2000; i++ {
		t0 := time.Now()
		resp, err := client.Get(fmt.Sprintf("%s/items/%d/proof", base, 1+i%n))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		durs = append(durs, time.Since(t0))
	}
	slices.Sort(durs)
	t.Logf("proof over HTTP (%d leaves): p50 %v p99 %v", n, durs[len(durs)/2], durs[len(durs)*99/100])
}
