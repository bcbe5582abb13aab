package http

import (
	"context"
	"encoding/json"
	"fmt"
	nethttp "net/http"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/ledger"
	"github.com/baton-pub/baton/sqlite"
	"github.com/baton-pub/baton/wire"
)

// A position or seq parameter above baton.MaxSeq (2^63-1) is refused with
// 400 invalid naming it, on every route and every engine; one at MaxSeq
// reads as after the last seq. SQLite takes no integer above 2^63-1, and
// answered 500 to ?after=2^63 before.
func TestSeqParamsBounded(t *testing.T) {
	lite, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "b.db"), sqlite.Options{Sync: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lite.Close() })
	for name, store := range map[string]baton.Store{"memstore": memstore.New(nil), "sqlite": lite} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, store, hub.Options{}, Config{Ledger: stubLedger{}})
			newPublisher(t, store, testTopic).publish(2)
			over := strconv.FormatUint(baton.MaxSeq+1, 10)
			for _, tc := range []struct{ path, header, field string }{
				{"/v1/topics/quotes/items?after=" + over, "", "after"},
				{"/v1/topics/quotes/items?after=18446744073709551615", "", "after"},
				{"/v1/topics/quotes/events?after=" + over, "", "after"},
				{"/v1/topics/quotes/events", over, "Last-Event-ID"},
				{"/v1/topics/quotes/items/" + over + "/proof", "", "seq"},
				{"/v1/topics/quotes/consistency?from=" + over + "&to=1", "", "from"},
				{"/v1/topics/quotes/consistency?from=1&to=" + over, "", "to"},
			} {
				req, err := nethttp.NewRequest("GET", e.url+tc.path, nil)
				if err != nil {
					t.Fatal(err)
				}
				if tc.header != "" {
					req.Header.Set("Last-Event-ID", tc.header)
				}
				resp, err := nethttp.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				var bad wire.ErrorResponse
				if resp.StatusCode == 400 { // a stream that started would not end
					err = json.NewDecoder(resp.Body).Decode(&bad)
				}
				resp.Body.Close()
				if err != nil || resp.StatusCode != 400 || bad.Error.Code != baton.CodeInvalid || bad.Error.Field != tc.field {
					t.Errorf("%s (Last-Event-ID %q): %d %+v %v, want 400 invalid %s", tc.path, tc.header, resp.StatusCode, bad.Error, err, tc.field)
				}
			}
			var page wire.ItemsResponse
			path := fmt.Sprintf("/v1/topics/quotes/items?after=%d", uint64(baton.MaxSeq))
			if resp := e.do("GET", path, nil, nil, &page); resp.StatusCode != 200 || len(page.Items) != 0 || page.NextAfter != baton.MaxSeq {
				t.Fatalf("%s: %d %+v, want an empty page", path, resp.StatusCode, page)
			}
		})
	}
}

// stubLedger finds nothing: the ledger routes' parameters are checked
// before it is asked.
type stubLedger struct{}

func (stubLedger) Checkpoint(string) (baton.Checkpoint, error) {
	return baton.Checkpoint{}, baton.ErrNotFound
}
func (stubLedger) Proof(string, uint64) (ledger.Proof, error) {
	return ledger.Proof{}, baton.ErrNotFound
}
func (stubLedger) Consistency(string, uint64, uint64) (ledger.Consistency, error) {
	return ledger.Consistency{}, baton.ErrNotFound
}
