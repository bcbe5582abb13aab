// Many topics, patterns, snapshots and the WebSocket against real `baton
// serve` processes (test/cluster.js), on both transports: the same
// subscribe API and the same guarantees whichever the application picks.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { Baton, BatonError, UsageError } from "../dist/index.js";
import { Cluster, tokenKey, until } from "./cluster.js";
import { assertExactlyOnce, collect, quick, startSource } from "./helpers.js";

const transports = ["sse", "ws"];

/** The seqs st received of topic, in order. */
const seqsOf = (st, topic) => st.items.filter((it) => it.topic === topic).map((it) => it.seq);
const upTo = (n) => Array.from({ length: n }, (_, i) => i + 1);

describe("many topics, patterns and snapshots on one connection", () => {
  let c;
  before(async () => {
    c = await Cluster.start(2);
  });
  after(async () => {
    await c?.stop();
  });

  for (const tr of transports) {
    it(`${tr}: follows named topics and a pattern, a topic made later included, and resumes from positions`, { timeout: 60000 }, async () => {
      const b = new Baton({ nodes: c.urls, transport: tr, ...quick });
      const named = `${tr}-m.a`;
      const early = `${tr}-p.early`;
      const late = `${tr}-p.late`;
      await b.publish(named, [{ id: "x", value: 1 }, { id: "y", value: 2 }]);
      await b.publish(early, { id: "x", value: 1 });
      const sub = b.subscribe([named, `${tr}-p.*`]);
      const st = collect(sub);
      await until("the items made before", 10000, () => st.items.length >= 3);

      // A topic the pattern selects, made while the subscription runs.
      await b.publish(late, [{ id: "x", value: 1 }, { id: "x", value: 2 }]);
      await b.publish(named, { id: "z", value: 3 });
      await until(`${late}'s items`, 20000, () => seqsOf(st, late).length >= 2 && seqsOf(st, named).length >= 3);
      assert.deepEqual(seqsOf(st, named), [1, 2, 3]);
      assert.deepEqual(seqsOf(st, early), [1]);
      assert.deepEqual(seqsOf(st, late), [1, 2]);
      const saved = sub.positions;
      assert.deepEqual(Object.fromEntries(saved), { [named]: 3, [early]: 1, [late]: 2 });
      sub.close();
      assert.equal(await st.done, undefined);

      // A later run resumes every topic, those the pattern found included, after its saved position.
      await b.publish(late, { id: "x", value: 3 });
      await b.publish(named, { id: "z", value: 4 });
      const resumed = b.subscribe([named, `${tr}-p.*`], { positions: saved });
      const again = collect(resumed);
      await until("the items after the saved positions", 10000, () => again.items.length >= 2);
      assert.deepEqual(again.items.map((it) => `${it.topic}:${it.seq}`).sort(), [`${named}:4`, `${late}:3`]);
      resumed.close();
      assert.equal(await again.done, undefined);
      b.close();
    });

    it(`${tr}: starts with the snapshot, then the live items without gap, one topic, many or a pattern`, { timeout: 60000 }, async () => {
      const b = new Baton({ nodes: c.urls, transport: tr, ...quick });
      const topic = `${tr}-snap.main`;
      const other = `${tr}-snap.empty`;
      await b.publish(topic, [{ id: "k1", value: 1 }, { id: "k2", value: 2 }, { id: "k1", value: 3 }, { id: "k3", value: 4 }]);
      await b.publish(topic, { id: "k3", deleted: true });
      let last = 5;
      for (const topics of [topic, [topic, other], [`${tr}-snap.*`]]) {
        // A publish is acknowledged once appended; the snapshot is of what the lease holder published.
        await until(`seq ${last} published`, 10000, async () => (await c.get(`/v1/topics/${topic}/cursor`)).seq >= last);
        const sub = b.subscribe(topics, { snapshot: true });
        const st = collect(sub);
        await until("snapshot_end", 10000, () => st.got.some((e) => e.type === "snapshot_end" && e.topic === topic));
        const of = st.got.filter((e) => e.topic === topic);
        assert.equal(of[0].type, "snapshot_start");
        const state = new Map();
        for (const e of of.filter((e) => e.type === "snapshot")) {
          if (e.item.deleted) state.delete(e.item.id);
          else state.set(e.item.id, e.item.value);
        }
        assert.deepEqual(Object.fromEntries(state), { k1: 3, k2: 2 });
        assert.deepEqual(of.find((e) => e.type === "snapshot_end").seq, last);
        assert.equal(sub.positions.get(topic), last);
        if (Array.isArray(topics) && topics.includes(other)) {
          // A topic with nothing published has an empty snapshot at 0.
          await until(`${other}'s snapshot_end`, 10000, () => st.got.some((e) => e.type === "snapshot_end" && e.topic === other));
        }
        const [r] = await b.publish(topic, { id: "k2", value: 9 });
        await until("the live item", 10000, () => st.items.some((it) => it.seq === r.seq));
        assert.deepEqual(seqsOf(st, topic), [r.seq], "the first item after the snapshot is the next seq");
        assert.equal(r.seq, last + 1);
        sub.close();
        await st.done;
        // The next round starts from the same state: k2 back to 2.
        await b.publish(topic, [{ id: "k2", value: 2 }, { id: "k3", deleted: true }]);
        last += 3;
      }
      b.close();
    });

    it(`${tr}: refuses bad input with a typed error, before a request or from the node`, async () => {
      const b = new Baton({ nodes: c.urls, transport: tr, ...quick });
      const err = await collect(b.subscribe([".bad", "good"])).done;
      assert.ok(err instanceof BatonError, `got ${err}`);
      assert.equal(err.status, 400);
      assert.equal(err.code, "invalid");
      assert.equal(err.field, "topic");
      assert.throws(() => b.subscribe(["a*"]), UsageError);
      assert.throws(() => b.subscribe(["a", "b"], { after: 3 }), UsageError);
      assert.throws(() => b.subscribe(["a.*"], { positions: { b: 1 } }), UsageError);
      b.close();
    });
  }

  it("ws: publishes over the socket, acked with receipts; a retried msg id is a duplicate; a bad update is a typed error", { timeout: 30000 }, async () => {
    // Every HTTP request fails: what succeeds went over the WebSocket.
    const noHTTP = async () => {
      throw new Error("no HTTP in this test");
    };
    const b = new Baton({ nodes: c.urls, transport: "ws", fetch: noHTTP, ...quick });
    const rs = await b.publish("wspub", [{ id: "a", value: 1 }, { id: "b", value: 2, msgId: "m-b" }]);
    assert.deepEqual(rs.map((r) => [r.seq, r.duplicate]), [[1, false], [2, false]]);
    assert.ok(rs.every((r) => /^[0-9a-f]{64}$/.test(r.hash)));
    const [dup] = await b.publish("wspub", { id: "b", value: 2, msgId: "m-b" });
    assert.deepEqual([dup.seq, dup.duplicate, dup.hash], [2, true, rs[1].hash]);
    const err = await b.publish("wspub", [{ id: "c", value: 3 }, { id: "", value: 4 }]).then(() => undefined, (e) => e);
    assert.ok(err instanceof BatonError, `got ${err}`);
    assert.deepEqual([err.status, err.code, err.field], [400, "invalid", "items[1].id"]);
    assert.equal((await c.get("/v1/topics/wspub")).last_seq, 2, "the refused batch appended nothing");
    b.close();
  });
});

for (const tr of transports) {
  describe(`a SIGKILLed node under a subscription to many topics (${tr})`, () => {
    let c;
    let keep = false;
    before(async () => {
      c = await Cluster.start(2);
    });
    after(async () => {
      await c?.stop(keep);
    });

    it("resumes every topic on the other node: each item once, in order", { timeout: 120000 }, async (t) => {
      t.after(() => { keep = t.passed === false; });
      const topics = [`${tr}.kill.a`, `${tr}.kill.b`];
      const pub = new Baton({ nodes: c.urls, ...quick });
      for (const topic of topics) await pub.publish(topic, { id: "first", value: 0 }, { msgId: `${topic}-first` });
      // The subscriber reads the lease holder of the first topic first.
      const holder = await c.holder(topics[0]);
      const order = [holder.url, ...c.urls.filter((u) => u !== holder.url)];
      const sub = new Baton({ nodes: order, transport: tr, ...quick }).subscribe([topics[0], `${tr}.kill.*`]);
      const st = collect(sub);
      const srcs = topics.map((topic) => startSource(pub, topic));

      await until("10 items of each topic", 30000, () => topics.every((tp) => seqsOf(st, tp).length >= 10));
      const reading = st.got.at(-1).node;
      const victim = c.nodes.find((n) => n.url === reading);
      assert.ok(victim, `reading from ${reading}`);
      const n = st.items.length;
      await victim.kill();
      await until("20 more items from the other node", 60000, () => st.items.length >= n + 20 && st.got.at(-1).node !== victim.url);

      const lasts = [];
      for (const s of srcs) lasts.push(await s.stop());
      await until("every acknowledged item", 30000, () => topics.every((tp, i) => sub.positions.get(tp) >= lasts[i]));
      sub.close();
      assert.equal(await st.done, undefined);
      topics.forEach((tp, i) => {
        assertExactlyOnce(st.items.filter((it) => it.topic === tp), lasts[i]);
        for (const it of st.items.filter((it) => it.topic === tp && it.seq > 1)) {
          assert.equal(it.msgId, srcs[i].acked.get(it.seq), `${tp} seq ${it.seq}`);
        }
      });
    });
  });
}

describe("tokens on many topics and the WebSocket", () => {
  let c;
  let dir;
  let key;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "baton-js-key-"));
    key = tokenKey(dir);
    c = await Cluster.start(1, ["--jwt-key", key.file]);
  });
  after(async () => {
    await c?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const tr of transports) {
    it(`${tr}: a refused token is a typed 401; an expired one is renewed with getToken, resuming after the last item`, { timeout: 120000 }, async () => {
      const topics = [`${tr}.tok.a`, `${tr}.tok.b`];
      const refused = new Baton({ nodes: c.urls, transport: tr, ...quick, token: "not.a.token" });
      const err = await collect(refused.subscribe(topics)).done;
      assert.ok(err instanceof BatonError, `got ${err}`);
      assert.equal(err.status, 401);
      const denied = new Baton({ nodes: c.urls, transport: tr, ...quick, token: key.mint("--subscribe", "other.*") });
      const err403 = await collect(denied.subscribe(topics)).done;
      assert.ok(err403 instanceof BatonError, `got ${err403}`);
      assert.equal(err403.status, 403);

      const pub = new Baton({ nodes: c.urls, ...quick, token: key.mint("--publish", `${tr}.tok.*`) });
      const reasons = [];
      const mint = () => key.mint("--subscribe", `${tr}.tok.*`, "--ttl", "2s");
      const b = new Baton({ nodes: c.urls, transport: tr, ...quick, token: mint(), getToken: (r) => { reasons.push(r); return mint(); } });
      const sub = b.subscribe(topics);
      const st = collect(sub);
      const srcs = topics.map((topic) => startSource(pub, topic));
      await until("two token renewals", 60000, () => reasons.filter((r) => r === "expired").length >= 2);
      const lasts = [];
      for (const s of srcs) lasts.push(await s.stop());
      await until("every acknowledged item", 30000, () => topics.every((tp, i) => sub.positions.get(tp) >= lasts[i]));
      sub.close();
      assert.equal(await st.done, undefined);
      topics.forEach((tp, i) => assertExactlyOnce(st.items.filter((it) => it.topic === tp), lasts[i]));
    });
  }
});
