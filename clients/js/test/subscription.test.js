// A subscription's rules across connections, with a scripted transport
// in place of a node (the Transport interface a later transport plugs
// into): duplicates dropped, the position carried to the next node in
// turn, resets, deletion, gaps and token refresh.

import assert from "node:assert/strict";
import { it } from "node:test";

import { Baton, GapError, NetworkError, ProtocolError } from "../dist/index.js";

const item = (seq) => ({ type: "item", topic: "t", item: { topic: "t", seq, id: "k", value: seq, hash: "", epoch: 1, publisher: "n", msgId: `m${seq}` } });

/** A transport that plays one script per connection: a list of events, then an error to throw or nothing (the server ended the stream). */
function scripted(scripts) {
  const opened = [];
  return {
    opened,
    transport: {
      name: "scripted",
      async *open(req) {
        opened.push({ node: req.node, after: req.positions.get("t"), token: req.token, snapshot: [...req.snapshot] });
        const s = scripts.shift();
        if (!s) {
          // Nothing more to play: wait until the subscription ends.
          await new Promise((r) => req.signal.addEventListener("abort", r, { once: true }));
          return;
        }
        for (const ev of s.events ?? []) yield ev;
        if (s.error) throw s.error;
      },
    },
  };
}

async function take(sub, n) {
  const out = [];
  for await (const ev of sub) {
    out.push(ev);
    if (out.length === n) break;
  }
  return out;
}

it("drops duplicates and resumes on the next node after the last seq delivered", async () => {
  const s = scripted([
    { events: [item(1), item(2), item(2)], error: new NetworkError("http://a", "reset by peer") },
    { events: [item(1), item(2), item(3)] },
    { error: new NetworkError("http://c", "refused") },
    { events: [item(3), item(4)] },
  ]);
  const retries = [];
  const b = new Baton({ nodes: ["http://a", "http://b", "http://c"], transport: s.transport, backoff: { initialMs: 1, maxMs: 2 }, onRetry: (r) => retries.push(r) });
  const sub = b.subscribe("t");
  const got = await take(sub, 4);
  assert.deepEqual(got.map((e) => [e.item.seq, e.node]), [[1, "http://a"], [2, "http://a"], [3, "http://b"], [4, "http://a"]]);
  assert.deepEqual(s.opened.map((o) => [o.node, o.after]), [["http://a", 0], ["http://b", 2], ["http://c", 3], ["http://a", 3]]);
  assert.deepEqual(retries.map((r) => r.attempt), [0, 0, 1], "a connection that delivered starts the count again");
  assert.equal(sub.position, 4);
});

it("reports a reset and goes on after it; a deleted event ends the iteration", async () => {
  const s = scripted([{ events: [item(1), { type: "reset", topic: "t", earliest: 7 }, item(7), { type: "deleted", topic: "t" }, item(8)] }]);
  const b = new Baton({ nodes: ["http://a"], transport: s.transport });
  const sub = b.subscribe("t");
  const got = [];
  for await (const ev of sub) got.push(ev.type === "item" ? ev.item.seq : ev.type === "reset" ? `reset ${ev.earliest}` : ev.type);
  assert.deepEqual(got, [1, "reset 7", 7, "deleted"]);
});

it("ends with a GapError when a node skips a seq without a reset", async () => {
  const s = scripted([{ events: [item(1), item(3)] }]);
  const b = new Baton({ nodes: ["http://a"], transport: s.transport });
  const got = [];
  await assert.rejects(async () => {
    for await (const ev of b.subscribe("t")) got.push(ev.item.seq);
  }, (e) => e instanceof GapError && e.after === 1 && e.seq === 3);
  assert.deepEqual(got, [1]);
});

it("asks getToken for a new token after an auth event and resumes with it", async () => {
  const s = scripted([
    { events: [item(1), { type: "auth", code: "unauthorized", message: "token expired" }] },
    { events: [item(2)] },
  ]);
  const reasons = [];
  const b = new Baton({ nodes: ["http://a", "http://b"], token: "old", transport: s.transport, getToken: (r) => { reasons.push(r); return "new"; } });
  const got = await take(b.subscribe("t"), 2);
  assert.deepEqual(got.map((e) => e.item.seq), [1, 2]);
  assert.deepEqual(reasons, ["expired"]);
  assert.deepEqual(s.opened.map((o) => [o.token, o.after]), [["old", 0], ["new", 1]]);
});

it("ends quietly when its signal aborts", async () => {
  const s = scripted([{ events: [item(1)] }]);
  const ctl = new AbortController();
  const b = new Baton({ nodes: ["http://a"], transport: s.transport });
  const got = [];
  for await (const ev of b.subscribe("t", { after: 0, signal: ctl.signal })) {
    got.push(ev.item.seq);
    ctl.abort();
  }
  assert.deepEqual(got, [1]);
});

const snap = (seq, id) => ({ type: "snapshot", topic: "t", item: { topic: "t", seq, id, value: seq, hash: "", epoch: 1, publisher: "n", msgId: `m${seq}`, deleted: false } });

it("starts a snapshot cut short again, whole, and goes on after its seq", async () => {
  const s = scripted([
    { events: [snap(1, "a")], error: new NetworkError("http://a", "reset by peer") },
    { events: [snap(1, "a"), snap(4, "b"), { type: "snapshot_end", topic: "t", seq: 5 }, item(6)], error: new NetworkError("http://b", "reset") },
    { events: [item(7)] },
  ]);
  const b = new Baton({ nodes: ["http://a", "http://b"], transport: s.transport, backoff: { initialMs: 1, maxMs: 2 } });
  const sub = b.subscribe("t", { snapshot: true });
  const got = await take(sub, 8);
  assert.deepEqual(got.map((e) => e.type === "item" || e.type === "snapshot" ? `${e.type} ${e.item.seq}` : e.type === "snapshot_end" ? `end ${e.seq}` : e.type),
    ["snapshot_start", "snapshot 1", "snapshot_start", "snapshot 1", "snapshot 4", "end 5", "item 6", "item 7"]);
  assert.deepEqual(s.opened.map((o) => [o.after, o.snapshot]), [[0, ["t"]], [0, ["t"]], [6, []]], "after snapshot_end, resume from the items");
});

it("refuses a snapshot event it did not ask for", async () => {
  const s = scripted([{ events: [item(1), snap(1, "a")] }]);
  const b = new Baton({ nodes: ["http://a"], transport: s.transport });
  await assert.rejects(async () => {
    for await (const ev of b.subscribe("t")) void ev;
  }, (e) => e instanceof ProtocolError);
});

it("goes on after one topic of many is deleted, and follows topics a pattern finds", async () => {
  const other = (topic, seq) => ({ type: "item", topic, item: { topic, seq, id: "k", value: seq, hash: "", epoch: 1, publisher: "n", msgId: "" } });
  const s = scripted([{ events: [item(1), { type: "deleted", topic: "t" }, other("p.x", 1), other("q", 1), other("p.x", 2)] }]);
  const b = new Baton({ nodes: ["http://a"], transport: s.transport });
  const sub = b.subscribe(["t", "p.*"]);
  const got = await take(sub, 4);
  assert.deepEqual(got.map((e) => `${e.type} ${e.topic}${e.item ? ` ${e.item.seq}` : ""}`), ["item t 1", "deleted t", "item p.x 1", "item p.x 2"]);
  assert.deepEqual(Object.fromEntries(sub.positions), { t: 0, "p.x": 2 }, "a topic neither named nor selected (q) is not followed");
});
