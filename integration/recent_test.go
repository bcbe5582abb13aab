package integration

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/client"
	"github.com/baton-pub/baton/wire"
)

// TestReconnectWaveFromMemory: clients that resume near the head of a
// topic another client follows on the node (as the clients of an ended
// node do when they reconnect) get what they missed from the node's
// memory of what it sent last (hub/recent.go), each item once and in
// order, and the node does not read the store for each of them.
func TestReconnectWaveFromMemory(t *testing.T) {
	c := newCluster(t, sqliteEngine, 2, testTTL)
	cl, err := client.New(c.addrs(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ups []baton.Update
	for i := range 50 {
		ups = append(ups, baton.Update{ID: "k", Value: []byte(strconv.Itoa(i)), MsgID: "w-" + strconv.Itoa(i)})
	}
	base := c.nodes[1].URL()

	// A live stream on the node, from the start, open while the items are
	// published: the node's feed sends them out, and keeps the last ones.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/topics/wave/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("live stream: %v %v", resp, err)
	}
	defer resp.Body.Close()
	got50 := make(chan struct{})
	go func() {
		_ = wire.ReadEvents(resp.Body, func(ev wire.Event) error {
			if it, err := ev.Item(); ev.Type == wire.EventItem && err == nil && it.Seq == 50 {
				close(got50)
			}
			return nil
		})
	}()
	if _, err := cl.Publish(ctx, "wave", ups); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got50:
	case <-ctx.Done():
		t.Fatal("the live stream did not get seq 50")
	}

	reads := `baton_store_operation_duration_seconds_count{operation="published"}`
	before := scrape(t, base+"/metrics", reads)
	const wave = 100
	for i := range wave {
		after := uint64(40 + i%10) // 40..49 behind the head at 50
		seqs, _ := streamSeqs(t, base, "wave", "", "", after, 50)
		want := make([]uint64, 0, 10)
		for s := after + 1; s <= 50; s++ {
			want = append(want, s)
		}
		if !slices.Equal(seqs, want) {
			t.Fatalf("resumed after %d: got %v, want %v", after, seqs, want)
		}
	}
	// The feed itself reads on commits (none now); give a little room for
	// the node's other readers, far below one read per resume.
	if n := scrape(t, base+"/metrics", reads) - before; n >= wave/5 {
		t.Fatalf("%v store reads of published items for %d resumes near the head", n, wave)
	}
}
