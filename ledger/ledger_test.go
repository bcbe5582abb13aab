package ledger_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/transparency-dev/merkle/proof"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/redistest"
	"github.com/baton-pub/baton/internal/testlog"
	"github.com/baton-pub/baton/ledger"
	"github.com/baton-pub/baton/node"
	"github.com/baton-pub/baton/redis"
	"github.com/baton-pub/baton/sqlite"
)

// tamperer changes stored data behind the store's back, as an attacker with
// access to the store (or a bug) would.
type tamperer interface {
	itemValue(t *testing.T, topic string, seq uint64, value string)
	leafPublisher(t *testing.T, topic string, seq uint64, publisher string)
	checkpointRoot(t *testing.T, topic string, size uint64, root baton.Hash)
	checkpointNote(t *testing.T, topic string, size uint64, note []byte)
	cosignature(t *testing.T, topic string, size uint64, node string, sig []byte)
}

type engine struct {
	name string
	// open returns a new handle onto the engine's data (one per node).
	open   func(t *testing.T) baton.Store
	tamper tamperer
}

func engines(t *testing.T) []engine {
	dir := t.TempDir()
	path := filepath.Join(dir, "baton.db")
	es := []engine{
		{name: "memstore", open: func() func(t *testing.T) baton.Store {
			m := memstore.New(nil)
			return func(t *testing.T) baton.Store { return m.Handle() }
		}()},
		{name: "sqlite", open: func(t *testing.T) baton.Store {
			s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}, tamper: sqliteTamper{path: path}},
	}
	srv := redistest.Start(t, redistest.Options{})
	if srv != nil {
		url := srv.URL(0)
		es = append(es, engine{name: "redis", open: func(t *testing.T) baton.Store {
			s, err := redis.Open(context.Background(), url, redis.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}, tamper: redisTamper{c: srv.Client()}})
	}
	return es
}

// checkFor polls cond until it holds or the deadline passes (internal/poll;
// the short name keeps this package's many call sites).
func checkFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	poll.True(t, d, what, cond)
}

type testNode struct {
	id      string
	node    *node.Node
	witness *ledger.Witness
	key     *ledger.Key
	store   baton.Store
}

func startNode(t *testing.T, st baton.Store, id string) *testNode {
	t.Helper()
	return startNodeIn(t, st, id, t.TempDir(), 0)
}

// startNodeIn starts a node whose key and ledger copies are in dir, its
// witness sweeping every topic once per sweep (0: the default).
func startNodeIn(t *testing.T, st baton.Store, id, dir string, sweep time.Duration) *testNode {
	t.Helper()
	log := testlog.New(t).With("node", id)
	key, err := ledger.LoadOrCreateKey(dir, id)
	if err != nil {
		t.Fatal(err)
	}
	w, err := ledger.NewWitness(ledger.WitnessConfig{Store: st, Key: key, Copies: copiesIn(t, filepath.Join(dir, "ledger")), Dir: filepath.Join(dir, "ledger"), Poll: 20 * time.Millisecond, CosignEvery: 20 * time.Millisecond, Sweep: sweep, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	w.Start(context.Background())
	n, err := node.New(st, node.Config{Node: id, TTL: time.Second, Key: key, Witness: w,
		CheckpointEvery: 100, CheckpointInterval: 50 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	tn := &testNode{id: id, node: n, witness: w, key: key, store: st}
	t.Cleanup(tn.stop)
	return tn
}

func (n *testNode) stop() {
	n.node.Close()
	n.witness.Close()
}

// update is the j-th item appendN appends.
func update(j int) baton.Update {
	return baton.Update{ID: fmt.Sprintf("k%d", j%7), Value: json.RawMessage(fmt.Sprintf(`{"n":%d}`, j)), MsgID: fmt.Sprintf("m%d", j)}
}

func appendN(t *testing.T, st baton.Store, topic string, n int) {
	t.Helper()
	for i := 0; i < n; i += 50 {
		var ups []baton.Update
		for j := i; j < min(n, i+50); j++ {
			ups = append(ups, update(j))
		}
		if _, err := st.Append(context.Background(), topic, ups); err != nil {
			t.Fatal(err)
		}
	}
}

// runCluster starts three nodes on one engine, publishes n items and waits
// until the latest checkpoint covers them and carries the two witnesses'
// cosignatures.
func runCluster(t *testing.T, e engine, topic string, n int) []*testNode {
	t.Helper()
	nodes := []*testNode{startNode(t, e.open(t), "node-a"), startNode(t, e.open(t), "node-b"), startNode(t, e.open(t), "node-c")}
	st := nodes[0].store
	appendN(t, st, topic, n)
	// A generous deadline: the whole suite runs at once under CI, and the
	// leases here have a TTL of 1s. On a timeout, say where things stood.
	err := poll.Wait(60*time.Second, func() error {
		cp, err := st.Checkpoint(context.Background(), topic)
		if err == nil && (cp.Size != uint64(n) || len(cp.Cosignatures) != 2) {
			err = fmt.Errorf("latest checkpoint: size %d, %d cosignatures", cp.Size, len(cp.Cosignatures))
		}
		return err
	})
	if err != nil {
		cur, cerr := st.Cursor(context.Background(), topic)
		lock, lerr := st.Lock(context.Background(), topic)
		hs, herr := st.Handovers(context.Background(), topic, 20)
		t.Logf("cursor %d (%v); lock %+v (%v); %d hand-overs (%v)", cur.Seq, cerr, lock, lerr, len(hs), herr)
		for _, tn := range nodes {
			t.Logf("%s: witness %+v", tn.id, tn.witness.Status(topic))
		}
		t.Fatalf("timed out after 60s waiting for a cosigned checkpoint of every item: %v", err)
	}
	for _, tn := range nodes {
		checkFor(t, tn.id+"'s witness to accept the last checkpoint", 10*time.Second, func() bool {
			s := tn.witness.Status(topic)
			return s != nil && s.CheckpointSize == uint64(n) && s.Size == uint64(n)
		})
	}
	return nodes
}

func pinned(t *testing.T, nodes ...*testNode) *ledger.Keys {
	ks := ledger.NewKeys(nil)
	for _, n := range nodes {
		v, err := n.key.VerifierKey()
		if err != nil {
			t.Fatal(err)
		}
		if err := ks.AddVerifierKey(v); err != nil {
			t.Fatal(err)
		}
	}
	return ks
}

func TestLedger(t *testing.T) {
	for _, e := range engines(t) {
		t.Run(e.name, func(t *testing.T) {
			const n = 250
			topic := "ledger-" + e.name
			nodes := runCluster(t, e, topic, n)
			ctx := context.Background()
			st := nodes[0].store

			// Proofs from every node verify offline against pinned keys and
			// with the library's verifier.
			for _, tn := range nodes {
				for _, seq := range []uint64{1, 2, 99, 100, 101, n} {
					p, err := tn.witness.Proof(topic, seq)
					if err != nil {
						t.Fatalf("%s: proof of %d: %v", tn.id, seq, err)
					}
					signers, err := ledger.VerifyProof(p, topic, seq, pinned(t, nodes...))
					if err != nil {
						t.Fatalf("%s: proof of %d does not verify: %v", tn.id, seq, err)
					}
					if len(signers) != 3 {
						t.Fatalf("proof of %d: %d signatures verified (%v), want the signer's and two cosignatures", seq, len(signers), signers)
					}
					cp, err := tn.witness.Checkpoint(topic)
					if err != nil {
						t.Fatal(err)
					}
					hs := make([][]byte, len(p.Hashes))
					for i := range p.Hashes {
						hs[i] = p.Hashes[i][:]
					}
					if err := proof.VerifyInclusion(ledger.Hasher, seq-1, cp.Size, p.LeafHash[:], hs, cp.Root[:]); err != nil {
						t.Fatalf("proof.VerifyInclusion of %d: %v", seq, err)
					}
				}
				if _, err := tn.witness.Proof(topic, n+1); err == nil {
					t.Fatal("a proof of an unpublished seq")
				}
				c, err := tn.witness.Consistency(topic, 37, 0)
				if err != nil {
					t.Fatal(err)
				}
				hs := make([][]byte, len(c.Hashes))
				for i := range c.Hashes {
					hs[i] = c.Hashes[i][:]
				}
				if err := proof.VerifyConsistency(ledger.Hasher, 37, n, hs, c.FromRoot[:], c.ToRoot[:]); err != nil {
					t.Fatalf("consistency 37..%d: %v", n, err)
				}
				// A wrong key does not verify.
				other, _ := ledger.GenerateKey(tn.id)
				v, _ := other.VerifierKey()
				ks := ledger.NewKeys(nil)
				ks.AddVerifierKey(v)
				p, _ := tn.witness.Proof(topic, 5)
				if _, err := ledger.VerifyProof(p, topic, 5, ks); err == nil {
					t.Fatal("a proof verified with a key that signed nothing")
				}
			}
			// Status shows the ledger.
			status, err := nodes[1].node.Status(ctx, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(status.Topics) != 1 || status.Topics[0].Ledger == nil || status.Topics[0].Ledger.Size != n || status.Topics[0].Ledger.Alarms != 0 {
				t.Fatalf("status ledger: %+v", status.Topics)
			}

			rep, err := ledger.Audit(ctx, st.(ledger.AuditStore), topic, ledger.AuditOptions{Batch: 64})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() || rep.Leaves != n || rep.ItemsChecked != n || rep.Checkpoints == 0 {
				t.Fatalf("audit of an untouched ledger: %+v", rep)
			}

			// A handover: stop the publisher; another takes over and goes on
			// checkpointing from its own copy.
			var pub *testNode
			checkFor(t, "a publisher", 10*time.Second, func() bool {
				for _, tn := range nodes {
					if _, ok := tn.node.Active()[topic]; ok {
						pub = tn
					}
				}
				return pub != nil
			})
			pub.stop()
			appendN(t, st, topic, 0)
			var rest *testNode
			for _, tn := range nodes {
				if tn != pub {
					rest = tn
				}
			}
			var more []baton.Update
			for j := 0; j < 30; j++ {
				more = append(more, baton.Update{ID: "x", Value: json.RawMessage(`1`), MsgID: fmt.Sprintf("more%d", j)})
			}
			if _, err := rest.store.Append(ctx, topic, more); err != nil {
				t.Fatal(err)
			}
			checkFor(t, "a checkpoint after the handover", 20*time.Second, func() bool {
				cp, err := rest.store.Checkpoint(ctx, topic)
				return err == nil && cp.Size == n+30 && cp.Node != pub.id && len(cp.Cosignatures) >= 1
			})
			for _, tn := range nodes {
				if tn != pub {
					tn.stop()
				}
			}
			rep, err = ledger.Audit(ctx, st.(ledger.AuditStore), topic, ledger.AuditOptions{})
			if err != nil || !rep.OK() || rep.Epochs < 2 {
				t.Fatalf("audit after a handover: %+v %v", rep, err)
			}
			if e.tamper == nil {
				return
			}
			testTamper(t, e, st.(ledger.AuditStore), topic)
		})
	}
}

// testTamper alters one record at a time and checks that the audit names it.
func testTamper(t *testing.T, e engine, st ledger.AuditStore, topic string) {
	ctx := context.Background()
	audit := func(what string, want ...string) {
		t.Helper()
		rep, err := ledger.Audit(ctx, st, topic, ledger.AuditOptions{})
		if err != nil {
			t.Fatalf("%s: audit: %v", what, err)
		}
		var all []string
		for _, p := range rep.Problems {
			all = append(all, p.Where+": "+p.What)
		}
		text := strings.Join(all, "\n")
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Fatalf("%s: the audit does not report %q; it reports:\n%s", what, w, text)
			}
		}
		t.Logf("%s: audit reports:\n%s", what, text)
	}
	cps, err := st.Checkpoints(ctx, topic, 0, 100)
	if err != nil || len(cps) < 2 {
		t.Fatalf("checkpoints: %d %v", len(cps), err)
	}
	cp := cps[len(cps)-1]

	e.tamper.itemValue(t, topic, 17, `{"n":"forged"}`)
	audit("tampered item", "item 17: its content does not hash")

	e.tamper.leafPublisher(t, topic, 42, "mallory")
	audit("tampered leaf", "leaf 42: published by mallory", fmt.Sprintf("checkpoint %d: root", cps[0].Size))

	var root baton.Hash
	root[0] = 1
	e.tamper.checkpointRoot(t, topic, cp.Size, root)
	audit("tampered checkpoint", fmt.Sprintf("checkpoint %d: note says root", cp.Size))
	e.tamper.checkpointRoot(t, topic, cp.Size, cp.Root)

	note := append([]byte(nil), cp.Note...)
	i := strings.LastIndex(string(note), " ") + 3 // inside the base64 of the last signature
	note[i] ^= 1
	e.tamper.checkpointNote(t, topic, cp.Size, note)
	audit("tampered signature", fmt.Sprintf("checkpoint %d: signature of %s does not verify", cp.Size, cp.Node))
	e.tamper.checkpointNote(t, topic, cp.Size, cp.Note)

	cs := cp.Cosignatures[0]
	sig := append([]byte(nil), cs.Signature...)
	sig[len(sig)-4] ^= 1
	e.tamper.cosignature(t, topic, cp.Size, cs.Node, sig)
	audit("tampered cosignature", fmt.Sprintf("checkpoint %d: cosignature of %s does not verify", cp.Size, cs.Node))
}

type sqliteTamper struct{ path string }

func (s sqliteTamper) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+s.path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(q, args...)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%s: %d rows changed", q, n)
	}
}

func (s sqliteTamper) itemValue(t *testing.T, topic string, seq uint64, value string) {
	s.exec(t, `UPDATE items SET value = ? WHERE topic = ? AND seq = ?`, []byte(value), topic, seq)
}

func (s sqliteTamper) leafPublisher(t *testing.T, topic string, seq uint64, publisher string) {
	s.exec(t, `UPDATE leaves SET publisher = ? WHERE topic = ? AND seq = ?`, publisher, topic, seq)
}

func (s sqliteTamper) checkpointRoot(t *testing.T, topic string, size uint64, root baton.Hash) {
	s.exec(t, `UPDATE checkpoints SET root = ? WHERE topic = ? AND size = ?`, root[:], topic, size)
}

func (s sqliteTamper) checkpointNote(t *testing.T, topic string, size uint64, note []byte) {
	s.exec(t, `UPDATE checkpoints SET note = ? WHERE topic = ? AND size = ?`, note, topic, size)
}

func (s sqliteTamper) cosignature(t *testing.T, topic string, size uint64, node string, sig []byte) {
	s.exec(t, `UPDATE cosignatures SET signature = ? WHERE topic = ? AND size = ? AND node = ?`, sig, topic, size, node)
}

type redisTamper struct{ c *goredis.Client }

func key(topic, suffix string) string { return "baton:{" + topic + "}:" + suffix }

// rebuild rewrites stream, whose entries are spans with the id of the
// last seq they hold: streams cannot be edited in place, so the stream is
// deleted and its entries added again, in order, except the one that holds
// seq, which is handed to edit with its first field's value; edit returns
// the entries (id and body) that replace it.
func (r redisTamper) rebuild(t *testing.T, stream string, seq uint64, edit func(id, body string) [][2]string) {
	t.Helper()
	ctx := context.Background()
	es, err := r.c.Do(ctx, "XRANGE", stream, "-", "+").Slice()
	if err != nil || len(es) == 0 {
		t.Fatalf("read %s: %d entries, %v", stream, len(es), err)
	}
	found := false
	pipe := r.c.TxPipeline()
	pipe.Del(ctx, stream)
	for _, e := range es {
		m := e.([]any)
		id, fs := m[0].(string), m[1].([]any)
		var last uint64
		fmt.Sscan(strings.TrimSuffix(id, "-0"), &last)
		if found || last < seq {
			pipe.XAdd(ctx, &goredis.XAddArgs{Stream: stream, ID: id, Values: fs})
			continue
		}
		found = true
		for _, n := range edit(id, fs[1].(string)) {
			pipe.XAdd(ctx, &goredis.XAddArgs{Stream: stream, ID: n[0], Values: []any{fs[0], n[1]}})
		}
	}
	if !found {
		t.Fatalf("no entry of %s holds %d", stream, seq)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
}

// itemValue changes the value of one item. The queue keeps one entry per
// append (redis/entry.go): entry id = last seq, field b = "<first seq>
// <ingested_us> " and one record per item, "<hash, 32 bytes><len(msg_id)>
// <len(id)> <len(value)> <msg_id><id><value>"; the record of seq is
// rewritten with the new value and its length.
func (r redisTamper) itemValue(t *testing.T, topic string, seq uint64, value string) {
	r.rebuild(t, key(topic, "queue"), seq, func(id, b string) [][2]string {
		first, rest, _ := strings.Cut(b, " ")
		ing, rest, _ := strings.Cut(rest, " ")
		var s uint64
		fmt.Sscan(first, &s)
		out := first + " " + ing + " "
		for ; rest != ""; s++ {
			h := rest[:32]
			f := strings.SplitN(rest[32:], " ", 4)
			var m, n, v int
			fmt.Sscan(f[0], &m)
			fmt.Sscan(f[1], &n)
			fmt.Sscan(f[2], &v)
			body := f[3]
			msgID, itemID, val := body[:m], body[m:m+n], body[m+n:m+n+v]
			rest = body[m+n+v:]
			if s == seq {
				val = value
			}
			out += fmt.Sprintf("%s%d %d %d %s%s%s", h, len(msgID), len(itemID), len(val), msgID, itemID, val)
		}
		return [][2]string{{id, out}}
	})
}

// leafPublisher changes the publisher of one leaf. Leaves are kept in
// segments (redis/entry.go): entry id = last seq, field s = "<first seq>
// <epoch> <at_ns> <len(publisher)> <publisher><item hashes, 32 bytes each>", so the
// segment that holds seq is split around it, as a forger would have to.
func (r redisTamper) leafPublisher(t *testing.T, topic string, seq uint64, publisher string) {
	r.rebuild(t, key(topic, "ledger"), seq, func(id, s string) [][2]string {
		f := strings.SplitN(s, " ", 5)
		var first, last uint64
		var plen int
		fmt.Sscan(f[0], &first)
		fmt.Sscan(strings.TrimSuffix(id, "-0"), &last)
		fmt.Sscan(f[3], &plen)
		pub, hashes := f[4][:plen], f[4][plen:]
		var out [][2]string
		add := func(from, to uint64, pub string) {
			if from <= to {
				hs := hashes[(from-first)*32 : (to-first+1)*32]
				out = append(out, [2]string{fmt.Sprintf("%d-0", to), fmt.Sprintf("%d %s %s %d %s%s", from, f[1], f[2], len(pub), pub, hs)})
			}
		}
		add(first, seq-1, pub)
		add(seq, seq, publisher)
		add(seq+1, last, pub)
		return out
	})
}

func (r redisTamper) editCheckpoint(t *testing.T, topic string, size uint64, edit func(m map[string]any)) {
	t.Helper()
	ctx := context.Background()
	k, f := key(topic, "checkpoints"), fmt.Sprint(size)
	js, err := r.c.HGet(ctx, k, f).Result()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, _ := json.Marshal(m)
	if err := r.c.HSet(ctx, k, f, b).Err(); err != nil {
		t.Fatal(err)
	}
}

func (r redisTamper) checkpointRoot(t *testing.T, topic string, size uint64, root baton.Hash) {
	r.editCheckpoint(t, topic, size, func(m map[string]any) { m["root"] = root.String() })
}

func (r redisTamper) checkpointNote(t *testing.T, topic string, size uint64, note []byte) {
	r.editCheckpoint(t, topic, size, func(m map[string]any) { m["note"] = base64.StdEncoding.EncodeToString(note) })
}

func (r redisTamper) cosignature(t *testing.T, topic string, size uint64, node string, sig []byte) {
	r.editCheckpoint(t, topic, size, func(m map[string]any) {
		cs := m["cosigs"].(map[string]any)
		c := cs[node].(map[string]any)
		c["signature"] = base64.StdEncoding.EncodeToString(sig)
	})
}
