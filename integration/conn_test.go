package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/proc"
	"github.com/baton-pub/baton/wire"
)

// TestConnFileLimit runs `baton serve` under an open-file limit of 256
// (prlimit) and opens event streams until one is refused: the refusal is
// a clean 503 unavailable, well before the descriptors run out (the
// --max-streams default keeps headroom under the limit), and the node
// still answers readiness and publishes while the streams are held.
// Without the headroom (--max-streams 1000) the node runs out of
// descriptors near stream 240 and answers nothing more.
func TestConnFileLimit(t *testing.T) {
	dir := t.TempDir()
	wrapper := filepath.Join(dir, "baton-limited")
	script := "#!/bin/sh\nexec prlimit --nofile=256:256 -- " + batonBin + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	n, err := proc.Start(context.Background(), wrapper, dir, "n1", sqliteEngine(t), "--log-level", "debug", "--sse-heartbeat", "200ms")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Kill)

	var streams []*http.Response
	t.Cleanup(func() {
		for _, s := range streams {
			s.Body.Close()
		}
	})
	refused := false
	for range 256 {
		resp, err := streamc.Get(n.URL() + "/v1/topics/fd/events")
		if err != nil {
			t.Fatalf("stream %d: %v", len(streams)+1, err)
		}
		if resp.StatusCode == http.StatusOK {
			streams = append(streams, resp)
			continue
		}
		var e wire.ErrorResponse
		err = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || err != nil || e.Error.Code != baton.CodeUnavailable {
			t.Fatalf("stream %d refused with %d %+v %v, want 503 unavailable", len(streams)+1, resp.StatusCode, e.Error, err)
		}
		refused = true
		break
	}
	if !refused {
		t.Fatalf("%d streams opened under a limit of 256 files, none refused", len(streams))
	}
	t.Logf("%d streams held, the next refused with 503", len(streams))

	for _, check := range []func() error{
		func() error { return status(httpc.Get(n.URL() + "/readyz")) },
		func() error {
			return status(httpc.Post(n.URL()+"/v1/topics/fd/items", "application/json", strings.NewReader(`{"id":"a","value":1}`)))
		},
	} {
		if err := check(); err != nil {
			t.Fatalf("with the streams held: %v", err)
		}
	}
	if !n.Alive() {
		t.Fatal("the node died")
	}
}

func status(resp *http.Response, err error) error {
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s", resp.Request.Method, resp.Request.URL.Path, resp.Status)
	}
	return nil
}

// streamc holds streams (no overall timeout) but gives up on an answer
// that does not come: a node out of descriptors accepts nothing.
var streamc = &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 10 * time.Second}}
