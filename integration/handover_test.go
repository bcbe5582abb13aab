package integration

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/wire"
)

const testTTL = 1 * time.Second

// engines lists the stores the hand-over tests run on. The Redis engine
// adds itself (redis_test.go).
var engines = map[string]engine{"sqlite": sqliteEngine}

func forEachEngine(t *testing.T, fn func(t *testing.T, eng engine)) {
	for name, eng := range engines {
		t.Run(name, func(t *testing.T) { fn(t, eng) })
	}
}

// TestKillPublisher: SIGKILL the lease holder mid-stream. A standby takes
// over, resumes after the last published item, and every acknowledged item
// reaches every terminal once, in order. With the peer watch (the default)
// a survivor finds the killed process gone and ends its node lease while
// it is still live: the record says "crashed", which only ReleaseNode of a
// live node lease writes, so the hand-over did not wait for the lapse.
// Without it (--peer-watch=false) the lease lapses: "expired".
func TestKillPublisher(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		for _, tc := range []struct {
			name  string
			ttl   time.Duration
			extra []string
			want  baton.ReleaseReason
		}{
			{"peer watch", 10 * time.Second, nil, baton.ReasonCrashed},
			{"lapse", testTTL, []string{"--peer-watch=false"}, baton.ReasonExpired},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := newClusterWith(t, eng, 3, tc.ttl, "", tc.extra...)
				src, terms, follow := c.run("orders", 200)
				progress(t, src, 100)
				victim, lease := c.holder("orders")
				if tc.want == baton.ReasonCrashed {
					c.watched(victim)
				}
				victim.Kill()
				progress(t, src, 100)
				next, l2 := c.holder("orders", victim)
				if next == victim || l2.Epoch <= lease.Epoch {
					t.Fatalf("after kill: holder %s epoch %d (was %s epoch %d)", next.Name, l2.Epoch, victim.Name, lease.Epoch)
				}
				rep := c.finish(src, terms, follow)
				hs := c.handovers("orders")
				var found bool
				for _, h := range hs {
					if h.Epoch == lease.Epoch {
						found = true
						if h.Reason != tc.want || h.Holder != victim.Name || h.Successor == "" || h.SuccessorEpoch != lease.Epoch+1 {
							t.Errorf("release record of the killed holder: %+v, want reason %s", h, tc.want)
						}
					}
				}
				if !found {
					t.Errorf("no release record for epoch %d: %+v", lease.Epoch, hs)
				}
				t.Logf("acked %d, delivered %v", rep.Acked, rep.Delivered)
			})
		}
	})
}

// TestGracefulHandover: SIGTERM the holder; it stops publishing, releases,
// and a standby takes over at once with a "released" record.
func TestGracefulHandover(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		c := newCluster(t, eng, 3, 10*time.Second) // a long TTL: only a release can hand over quickly
		src, terms, follow := c.run("prices", 200)
		progress(t, src, 100)
		victim, lease := c.holder("prices")
		start := time.Now()
		victim.Stop(10 * time.Second)
		next, l2 := c.holder("prices", victim)
		if took := time.Since(start); took >= 10*time.Second {
			t.Fatalf("hand-over waited for the TTL (%v): the lease was not released", took)
		}
		if next == victim || l2.Epoch != lease.Epoch+1 {
			t.Fatalf("after SIGTERM: holder %s epoch %d", next.Name, l2.Epoch)
		}
		progress(t, src, 100)
		c.finish(src, terms, follow)
		hs := c.handovers("prices")
		if len(hs) == 0 || hs[0].Epoch != lease.Epoch || hs[0].Reason != baton.ReasonReleased || hs[0].Successor != next.Name {
			t.Fatalf("release records: %+v", hs)
		}
	})
}

// TestPausedPublisherIsFenced: SIGSTOP the holder past its TTL, let a
// standby take over, then SIGCONT it. The zombie must not move the cursor
// or get a single item delivered under its old epoch after the hand-over.
func TestPausedPublisherIsFenced(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		c := newCluster(t, eng, 3, testTTL)
		src, terms, follow := c.run("ticks", 200)
		progress(t, src, 100)
		zombie, lease := c.holder("ticks")
		if err := zombie.Pause(); err != nil {
			t.Fatal(err)
		}
		next, l2 := c.holder("ticks", zombie)
		if l2.Epoch <= lease.Epoch {
			t.Fatalf("no successor while paused: %s epoch %d", next.Name, l2.Epoch)
		}
		progress(t, src, 100)
		// On SQLite the store may have fenced (killed) the zombie already if
		// it was stopped inside a write transaction: then there is nothing
		// to resume.
		if err := zombie.Resume(); err != nil {
			select {
			case <-zombie.Done(): // fenced
			case <-time.After(5 * time.Second):
				t.Fatal(err)
			}
		}
		// The zombie finds its lease gone; meanwhile the source goes on.
		progress(t, src, 200)
		c.finish(src, terms, follow)

		var rec *baton.ReleaseRecord
		for _, h := range c.handovers("ticks") {
			if h.Epoch == lease.Epoch {
				rec = &h
			}
		}
		if rec == nil || rec.Reason != baton.ReasonExpired || rec.Holder != zombie.Name || rec.SuccessorEpoch <= lease.Epoch {
			t.Fatalf("release record of the zombie's epoch %d: %+v", lease.Epoch, rec)
		}
		// Every seq after the one the zombie's lease ended at was published
		// under the successor's epoch or a later one: nothing under the
		// zombie's (or any older) epoch after the hand-over. And the
		// zombie's epoch names the zombie alone.
		for _, d := range c.h.Deliveries() {
			if d.Seq > rec.LastSeq && d.Epoch < rec.SuccessorEpoch {
				t.Fatalf("seq %d delivered under epoch %d by %s after the zombie's lease ended at seq %d (successor epoch %d)",
					d.Seq, d.Epoch, d.Publisher, rec.LastSeq, rec.SuccessorEpoch)
			}
			if d.Epoch == lease.Epoch && d.Publisher != zombie.Name {
				t.Fatalf("seq %d delivered under the zombie's epoch %d by %s", d.Seq, d.Epoch, d.Publisher)
			}
		}
		// On SQLite a writer stopped inside a transaction blocks the file:
		// the store fences it with SIGKILL (sqlite/fence.go). Otherwise the
		// zombie lives on as a standby.
		t.Logf("zombie alive after SIGCONT: %v", zombie.Alive())
		st := c.lock("ticks")
		if st.Lease.Holder == zombie.Name && st.Lease.Epoch == lease.Epoch {
			t.Fatalf("the zombie holds its old lease again: %+v", st)
		}
	})
}

// TestWrongAddressCostsAHandoverOnly: a node that advertises an address
// that is not its own (--advertise), whose stand-in then refuses
// connections, is taken for crashed by its peers' watch while it lives.
// That costs a hand-over, and nothing else: its leases end (crashed), it
// takes a new node lease, and every acknowledged item still reaches every
// terminal once, in order, published by one holder at a time.
func TestWrongAddressCostsAHandoverOnly(t *testing.T) {
	standIn := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(wire.InstanceHeader, "stand-in")
		w.Write([]byte(`{"status":"ok"}`))
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go standIn.Serve(ln)
	t.Cleanup(func() { standIn.Close() })

	c := newClusterWith(t, sqliteEngine, 0, 10*time.Second, "")
	c.extra = []string{"--advertise", ln.Addr().String()}
	wrong := c.start("n1")
	c.extra = nil
	src, terms, follow := c.run("orders", 200)
	progress(t, src, 50)
	if h, _ := c.holder("orders"); h != wrong {
		t.Fatalf("holder %s, want n1, the only node", h.Name)
	}
	c.start("n2")
	c.start("n3")
	c.watched(wrong) // the others hold connections to the stand-in
	h, lease := c.holder("orders")
	if h != wrong {
		t.Fatalf("holder %s, want n1 still (one topic is its share)", h.Name)
	}
	progress(t, src, 50)
	standIn.Close() // the "process" at n1's address is gone; n1 is not
	progress(t, src, 100)
	var rec *baton.ReleaseRecord
	poll.Until(t, 30*time.Second, "n1's lease ended as crashed", func() error {
		for _, h := range c.handovers("orders") {
			if h.Epoch == lease.Epoch {
				rec = &h
				return nil
			}
		}
		return fmt.Errorf("no record of epoch %d yet", lease.Epoch)
	})
	if rec.Reason != baton.ReasonCrashed || rec.Holder != wrong.Name {
		t.Fatalf("record of n1's lease: %+v, want crashed", rec)
	}
	if !wrong.Alive() {
		t.Fatal("n1 exited")
	}
	// n1 goes on: it takes a new node lease, and may publish again.
	poll.Until(t, 30*time.Second, "n1 under a new node lease", func() error {
		b, err := os.ReadFile(wrong.Log())
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, `"msg":"node lease acquired"`) && !strings.Contains(line, `"epoch":1}`) {
				return nil
			}
		}
		return errors.New("no second node lease in its log")
	})
	progress(t, src, 100)
	rep := c.finish(src, terms, follow)
	t.Logf("acked %d, delivered %v", rep.Acked, rep.Delivered)
}
