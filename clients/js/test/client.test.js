// The client against real `baton serve` processes (test/cluster.js).

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { Baton, BatonError } from "../dist/index.js";
import { Cluster, tokenKey, until } from "./cluster.js";
import { assertExactlyOnce, collect, quick, startSource } from "./helpers.js";

describe("one cluster of two nodes", () => {
  let c;
  before(async () => {
    c = await Cluster.start(2);
  });
  after(async () => {
    await c?.stop();
  });

  it("publishes a batch and delivers it in order with the values", async () => {
    const b = new Baton({ nodes: c.urls, ...quick });
    const rs = await b.publish("basic", [{ id: "a", value: { px: 1.5 } }, { id: "b", value: null }, { id: "a", value: "x", msgId: "mine" }]);
    assert.deepEqual(rs.map((r) => r.seq), [1, 2, 3]);
    assert.equal(rs[2].msgId, "mine");
    assert.match(rs[0].msgId, /^[0-9a-f-]{36}$/, "a generated msg id is a UUID");
    assert.ok(rs.every((r) => !r.duplicate && /^[0-9a-f]{64}$/.test(r.hash)));

    const sub = b.subscribe("basic");
    const st = collect(sub);
    await until("3 items", 10000, () => st.items.length >= 3);
    await b.publish("basic", { id: "c", value: 4 });
    await until("the live 4th item", 10000, () => st.items.length >= 4);
    sub.close();
    assert.equal(await st.done, undefined, "close ends the iteration without an error");
    assertExactlyOnce(st.items, 4);
    assert.deepEqual(st.items.map((it) => it.value), [{ px: 1.5 }, null, "x", 4]);
    assert.equal(st.items[2].msgId, "mine");
    assert.equal(st.items[0].hash, rs[0].hash);
    assert.equal(sub.position, 4);

    // Resuming from a saved position delivers only what follows it.
    const resumed = b.subscribe("basic", { after: 2 });
    const again = collect(resumed);
    await until("items after 2", 10000, () => again.items.length >= 2);
    resumed.close();
    assert.equal(await again.done, undefined);
    assert.deepEqual(again.items.map((it) => it.seq), [3, 4]);
  });

  it("reports a reset when the position was trimmed, then goes on from the earliest", async () => {
    const b = new Baton({ nodes: c.urls, ...quick });
    await b.publish("trimmed", { id: "k", value: 0 });
    const put = await c.send("PUT", "/v1/topics/trimmed/retention", { items: 3 });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    for (let i = 1; i < 10; i++) await b.publish("trimmed", { id: "k", value: i });
    const info = await until("the topic to be trimmed", 10000, async () => {
      const t = await c.get("/v1/topics/trimmed");
      return t.first_seq > 1 && t;
    });
    const sub = b.subscribe("trimmed");
    const st = collect(sub);
    await until("the items up to 10", 10000, () => sub.position >= 10);
    sub.close();
    assert.equal(await st.done, undefined);
    const [first, ...rest] = st.got;
    assert.equal(first.type, "reset");
    assert.ok(first.earliest >= info.first_seq && first.earliest > 1, `reset to ${first.earliest}, first kept ${info.first_seq}`);
    assert.deepEqual(rest.map((e) => e.item.seq), Array.from({ length: 11 - first.earliest }, (_, i) => first.earliest + i));
  });

  it("ends the iteration with a deleted event when the topic is deleted", async () => {
    const b = new Baton({ nodes: c.urls, ...quick });
    await b.publish("doomed", [{ id: "a", value: 1 }, { id: "b", value: 2 }]);
    const st = collect(b.subscribe("doomed"));
    await until("2 items", 10000, () => st.items.length >= 2);
    const del = await c.send("DELETE", "/v1/topics/doomed");
    assert.equal(del.status, 200, JSON.stringify(del.body));
    assert.equal(await st.done, undefined, "the iteration ends by itself, without an error");
    assert.deepEqual(st.got.map((e) => e.type), ["item", "item", "deleted"]);
  });

  it("throws a typed error carrying the server's body for bad input, without retrying", async () => {
    const retries = [];
    const b = new Baton({ nodes: c.urls, ...quick, onRetry: (r) => retries.push(r) });
    await b.publish("typed", { id: "ok", value: 1 });
    const err = await b.publish("typed", [{ id: "ok", value: 2 }, { id: "", value: 3 }]).then(() => undefined, (e) => e);
    assert.ok(err instanceof BatonError, `got ${err}`);
    assert.equal(err.status, 400);
    assert.equal(err.code, "invalid");
    assert.equal(err.field, "items[1].id");
    assert.match(err.requestId, /\S+/);
    assert.deepEqual(retries, []);
    assert.equal((await c.get("/v1/topics/typed")).last_seq, 1, "the refused batch appended nothing");

    const subErr = await collect(b.subscribe(".bad")).done;
    assert.ok(subErr instanceof BatonError, `got ${subErr}`);
    assert.equal(subErr.code, "invalid");
    assert.equal(subErr.field, "topic");
  });

  it("retries a publish whose answer was lost with the same msg ids: no duplicate", async () => {
    // Two proxies in front of the nodes. The first POST through either is
    // forwarded and appended, but its answer is dropped (the connection is
    // destroyed); the second answers 429 with Retry-After; then they pass.
    let posts = 0;
    const proxies = [];
    for (const target of c.urls) {
      const srv = createServer(async (req, res) => {
        const chunks = [];
        for await (const ch of req) chunks.push(ch);
        const body = Buffer.concat(chunks);
        const n = req.method === "POST" ? ++posts : 0;
        if (n === 2) {
          res.writeHead(429, { "Content-Type": "application/json", "Retry-After": "1" });
          res.end(JSON.stringify({ error: { code: "rate_limited", message: "slow down" } }));
          return;
        }
        const up = await fetch(target + req.url, { method: req.method, headers: { "Content-Type": "application/json" }, body: req.method === "POST" ? body : undefined });
        const text = await up.text();
        if (n === 1) {
          req.socket.destroy();
          return;
        }
        res.writeHead(up.status, { "Content-Type": "application/json" });
        res.end(text);
      });
      await new Promise((r) => srv.listen(0, "127.0.0.1", r));
      proxies.push(srv);
    }
    try {
      const retries = [];
      const b = new Baton({ nodes: proxies.map((s) => `http://127.0.0.1:${s.address().port}`), ...quick, onRetry: (r) => retries.push(r) });
      const rs = await b.publish("retried", [{ id: "a", value: 1 }, { id: "b", value: 2 }]);
      assert.equal(posts, 3, "the lost answer, the 429, then the answer");
      assert.deepEqual(retries.map((r) => r.error.name), ["NetworkError", "BatonError"]);
      assert.equal(retries[1].error.retryAfter, 1);
      assert.deepEqual(rs.map((r) => [r.seq, r.duplicate]), [[1, true], [2, true]], "the retry is answered as a duplicate of the first attempt");
      assert.equal((await c.get("/v1/topics/retried")).last_seq, 2, "appended once");
    } finally {
      for (const s of proxies) s.closeAllConnections?.(), s.close();
    }
  });
});

describe("a node failure under a subscription", () => {
  let c;
  let keep = false;
  before(async () => {
    c = await Cluster.start(3);
  });
  after(async () => {
    await c?.stop(keep);
  });

  it("resumes on another node after SIGKILL: every item once, in order", { timeout: 120000 }, async (t) => {
    t.after(() => { keep = t.passed === false; });
    const topic = "quotes";
    const pub = new Baton({ nodes: c.urls, ...quick });
    await pub.publish(topic, { id: "first", value: 0 }, { msgId: "first" });
    const holder = await c.holder(topic);
    // The subscriber reads the lease holder first: the SIGKILL takes the
    // publisher and the stream at once.
    const order = [holder.url, ...c.urls.filter((u) => u !== holder.url)];
    const sub = new Baton({ nodes: order, ...quick }).subscribe(topic);
    const st = collect(sub);
    const src = startSource(pub, topic);

    await until("10 items", 30000, () => st.items.length >= 10);
    const reading = st.got.at(-1).node;
    const victim = c.nodes.find((n) => n.url === reading);
    assert.ok(victim, `reading from ${reading}`);
    const n = st.items.length;
    await victim.kill();
    await until("20 more items from another node", 60000, () => st.items.length >= n + 20 && st.got.at(-1).node !== victim.url);

    const last = await src.stop();
    await until(`the subscriber to reach seq ${last}`, 30000, () => sub.position >= last);
    sub.close();
    assert.equal(await st.done, undefined);
    assertExactlyOnce(st.items, last);
    for (const it of st.items.slice(1)) assert.equal(it.msgId, src.acked.get(it.seq), `seq ${it.seq}`);
    assert.ok(st.items.some((it) => it.epoch > st.items[0].epoch) || victim !== holder, "a new publisher after the holder died");
  });
});

describe("tokens", () => {
  let c;
  let dir;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "baton-js-key-"));
  });
  after(async () => {
    await c?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("asks getToken for a new token when the stream's expires, and resumes after the last item", { timeout: 120000 }, async () => {
    const key = tokenKey(dir);
    c = await Cluster.start(1, ["--jwt-key", key.file]);
    const topic = "secret";
    const pub = new Baton({ nodes: c.urls, ...quick, token: key.mint("--publish", topic) });
    const reasons = [];
    const b = new Baton({
      nodes: c.urls, ...quick, token: key.mint("--subscribe", topic, "--ttl", "2s"),
      getToken: (reason) => { reasons.push(reason); return key.mint("--subscribe", topic, "--ttl", "2s"); },
    });
    const sub = b.subscribe(topic);
    const st = collect(sub);
    const src = startSource(pub, topic);
    await until("two token renewals", 60000, () => reasons.filter((r) => r === "expired").length >= 2);
    const last = await src.stop();
    await until(`the subscriber to reach seq ${last}`, 30000, () => sub.position >= last);
    sub.close();
    assert.equal(await st.done, undefined);
    assertExactlyOnce(st.items, last);

    // A publish whose token is refused asks getToken once and goes on with the new one.
    const refused = [];
    const badToken = new Baton({ nodes: c.urls, ...quick, token: "not.a.token",
      getToken: (reason) => { refused.push(reason); return key.mint("--publish", topic); } });
    const [r] = await badToken.publish(topic, { id: "k", value: "after a refusal" });
    assert.equal(r.seq, last + 1);
    assert.deepEqual(refused, ["refused"]);

    // Without getToken, the expired stream's auth event ends the iteration with a typed 401.
    const short = new Baton({ nodes: c.urls, ...quick, token: key.mint("--subscribe", topic, "--ttl", "2s") });
    const err = await collect(short.subscribe(topic)).done;
    assert.ok(err instanceof BatonError, `got ${err}`);
    assert.equal(err.status, 401);
  });
});

describe("publishing to the lease holder (Baton-Holder)", () => {
  let c;
  before(async () => {
    c = await Cluster.start(3);
  });
  after(async () => {
    await c?.stop();
  });

  /** The count of a node's appends forwarded to the holder (baton_append_forwards_total). */
  async function forwarded(url) {
    const text = await (await fetch(url + "/metrics")).text();
    const m = /^baton_append_forwards_total\{outcome="forwarded"\} (\S+)$/m.exec(text);
    return m ? Number(m[1]) : 0;
  }

  it("sends a topic's publishes over HTTP to the node the answers name as its holder", async () => {
    const topic = "hinted";
    await new Baton({ nodes: [c.urls[0]], ...quick, publishOver: "http" }).publish(topic, { id: "k", value: 0 });
    // A node that forwards names the holder: ask each until one does.
    let holder;
    await until("a node naming the holder", 30000, async () => {
      for (const u of c.urls) {
        const resp = await fetch(u + `/v1/topics/${topic}/items`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ id: "k", value: 1 }) });
        await resp.text();
        const h = resp.headers.get("Baton-Holder");
        if (h) holder = `http://${h}`;
      }
      return holder !== undefined && c.urls.includes(holder);
    });
    const others = c.urls.filter((u) => u !== holder);
    // Both others forward by now (each parks behind the holder after reading the lock).
    for (const u of others) {
      await until(`${u} naming the holder`, 30000, async () => {
        const resp = await fetch(u + `/v1/topics/${topic}/items`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ id: "k", value: 2 }) });
        await resp.text();
        return resp.headers.get("Baton-Holder") === new URL(holder).host;
      });
    }
    const before = (await Promise.all(others.map(forwarded))).reduce((a, b) => a + b, 0);
    const b = new Baton({ nodes: [...others, holder], ...quick, publishOver: "http" });
    for (let i = 0; i < 20; i++) await b.publish(topic, { id: "k", value: 10 + i });
    const after = (await Promise.all(others.map(forwarded))).reduce((a, b) => a + b, 0);
    assert.ok(after - before <= 1, `the other nodes forwarded ${after - before} of the client's 20 publishes, want at most the first`);
  });
});
