package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/client"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/proc"
	"github.com/baton-pub/baton/internal/redistest"
	"github.com/baton-pub/baton/wire"
)

// TestLostWritesRecovery walks the runbook of docs/operations.md ("A
// halted ledger") on a store that lost writes for real: Redis (append-only
// file, fsync always) is restarted from a copy of its AOF taken after 20
// of 40 published items. Brought back whole (the newer AOF), the topic
// resumes by itself; restarted from the older one again, every node halts the topic and names the check
// in its topic status, /readyz and /metrics; `baton ledger diagnose` names
// where the store and the copies part; `baton ledger reanchor` records
// the loss, signed; every node is ready again, new items are published
// and reach a terminal, and `baton ledger verify` reports the re-anchor.
func TestLostWritesRecovery(t *testing.T) {
	const topic = "lost"
	srv := redistest.Start(t, redistest.Options{KeyspaceEvents: "Ex"})
	c := newCluster(t, func(*testing.T) string { return srv.URL(0) }, 2, testTTL)
	cl, err := client.New(c.addrs(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	publish := func(from, to int) {
		t.Helper()
		var ups []baton.Update
		for i := from; i < to; i++ {
			ups = append(ups, baton.Update{ID: "k", MsgID: fmt.Sprintf("m%d", i), Value: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))})
		}
		if _, err := cl.Publish(ctx, topic, ups); err != nil {
			t.Fatal(err)
		}
	}
	// ledgerOf reads the topic's ledger status on node n.
	ledgerOf := func(n *proc.Node) (*baton.LedgerStatus, error) {
		var resp wire.TopicsResponse
		if err := getJSON(n.URL()+"/v1/topics?status=true", &resp); err != nil {
			return nil, err
		}
		for _, s := range resp.Statuses {
			if s.Topic == topic && s.Ledger != nil {
				return s.Ledger, nil
			}
		}
		return nil, errors.New("no ledger status of the topic")
	}
	accepted := func(size uint64) {
		t.Helper()
		for _, n := range c.nodes {
			err := poll.Wait(60*time.Second, func() error {
				l, err := ledgerOf(n)
				if err == nil && (l.CheckpointSize != size || l.Size != size || l.Halted != nil) {
					err = fmt.Errorf("ledger %+v", l)
				}
				return err
			})
			if err != nil {
				t.Fatalf("%s to accept checkpoint %d: %v", n.Name, size, err)
			}
		}
	}
	aof := filepath.Join(srv.Dir, "appendonlydir")
	backup := filepath.Join(t.TempDir(), "appendonlydir")

	publish(0, 20)
	accepted(20)
	copyDir(t, aof, backup)
	publish(20, 40)
	accepted(40)
	whole := filepath.Join(t.TempDir(), "appendonlydir")
	copyDir(t, aof, whole)
	restore := func(from string) {
		t.Helper()
		srv.Kill()
		if err := os.RemoveAll(aof); err != nil {
			t.Fatal(err)
		}
		copyDir(t, from, aof)
		srv.Restart()
	}
	halted := func() {
		t.Helper()
		for _, n := range c.nodes {
			poll.True(t, 60*time.Second, n.Name+" to halt the topic and say so", func() bool {
				l, err := ledgerOf(n)
				return err == nil && l.Halted != nil && l.Halted.Check == baton.HaltCursorBehind && l.Halted.Agreed == 20
			})
		}
	}
	ready := func() {
		t.Helper()
		for _, n := range c.nodes {
			poll.True(t, 60*time.Second, n.Name+" to be ready again", func() bool {
				status, _ := getRaw(t, n.URL()+"/readyz")
				l, err := ledgerOf(n)
				return status == 200 && err == nil && l.Halted == nil && l.Alarms == 0
			})
		}
	}
	// A store brought back whole lifts the halt by itself.
	restore(backup)
	halted()
	restore(whole)
	ready()

	restore(backup) // the store lost seqs 21..40, the copies hold them
	halted()
	for _, n := range c.nodes {
		status, body := getRaw(t, n.URL()+"/readyz")
		var nr wire.NotReady
		if err := json.Unmarshal(body, &nr); status != 503 || err != nil || !hasProblem(nr.Problems, baton.ProblemLedger, topic, "halted") {
			t.Errorf("%s /readyz: %d %s", n.Name, status, body)
		}
		if _, m := getRaw(t, n.URL()+"/metrics"); !strings.Contains(string(m), `baton_topic_halted{check="cursor_behind",topic="lost"} 1`) {
			t.Errorf("%s /metrics has no halted gauge of the topic", n.Name)
		}
	}

	out, code := runBaton(t, "ledger", "diagnose", topic, "--node", strings.Join(c.addrs(), ","))
	if code != 1 || !strings.Contains(out, "HALTED") || !strings.Contains(out, "agrees with the store up to seq 20") ||
		!strings.Contains(out, "baton ledger reanchor lost --from 20") {
		t.Fatalf("ledger diagnose: exit %d\n%s", code, out)
	}
	t.Logf("ledger diagnose:\n%s", out)
	if out, code := runBaton(t, "ledger", "reanchor", topic, "--from", "19", "--reason", "wrong seq", "--node", c.nodes[0].Addr); code == 0 {
		t.Fatalf("ledger reanchor from 19 was taken:\n%s", out)
	}
	out, code = runBaton(t, "ledger", "reanchor", topic, "--from", "20", "--reason", "Redis restarted from an older AOF", "--node", c.nodes[0].Addr)
	if code != 0 || !strings.Contains(out, "re-anchored from seq 20") {
		t.Fatalf("ledger reanchor: exit %d\n%s", code, out)
	}

	ready()
	got := make(chan uint64, 100)
	tctx, stop := context.WithCancel(ctx)
	defer stop()
	go cl.Subscribe(tctx, topic, 20, func(e client.Event) error {
		if e.Type == wire.EventItem && strings.HasPrefix(e.Item.MsgID, "new") {
			got <- e.Item.Seq
		}
		return nil
	})
	var ups []baton.Update
	for i := range 5 {
		ups = append(ups, baton.Update{ID: "k", MsgID: fmt.Sprintf("new%d", i), Value: json.RawMessage(`{"after":"reanchor"}`)})
	}
	if _, err := cl.Publish(ctx, topic, ups); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		select {
		case <-got:
		case <-ctx.Done():
			t.Fatal("the terminal did not get the items published after the re-anchor")
		}
	}
	var last uint64
	poll.True(t, 60*time.Second, "a checkpoint of the new items accepted by every node", func() bool {
		var resp wire.TopicsResponse
		if err := getJSON(c.nodes[0].URL()+"/v1/topics?status=true", &resp); err != nil || len(resp.Statuses) == 0 {
			return false
		}
		last = resp.Statuses[0].Cursor.Seq
		for _, n := range c.nodes {
			l, err := ledgerOf(n)
			if err != nil || l.CheckpointSize != last || l.Halted != nil {
				return false
			}
		}
		return last >= 25
	})

	out, code = runBaton(t, "ledger", "verify", topic, "--store", srv.URL(0), "--quiet")
	if code != 0 || !strings.Contains(out, "1 re-anchors: OK") || !strings.Contains(out, "re-anchored from seq 20: leaves 21..40") ||
		!strings.Contains(out, "Redis restarted from an older AOF") {
		t.Fatalf("ledger verify: exit %d\n%s", code, out)
	}
	t.Logf("ledger verify:\n%s", out)
}

func hasProblem(ps []baton.Problem, kind, topic, text string) bool {
	for _, p := range ps {
		if p.Kind == kind && p.Topic == topic && strings.Contains(p.Message, text) {
			return true
		}
	}
	return false
}

func getJSON(url string, out any) error {
	resp, err := httpc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func getRaw(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := httpc.Get(url)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// runBaton runs the baton CLI and returns its output and exit code.
func runBaton(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(batonBin, args...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("run baton %v: %v", args, err)
	return "", -1
}

// copyDir copies the regular files of dir from into to (created).
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	es, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
