// Measures the client on one real node: publishing in batches, then a
// subscription replaying every item from seq 0 (the SSE parser and the
// subscription's per-item work), then one item's trip from publish to the
// subscriber while live. Usage: node bench/replay.js [items] [batch]
// [sse|ws] (after npm ci; $BATON_BIN or go build as in the tests; ws on
// Node 20 needs node --experimental-websocket). The transport is the
// subscriptions'; publishing goes over HTTP either way.

import { Baton } from "../dist/index.js";
import { Cluster } from "../test/cluster.js";

const total = Number(process.argv[2] ?? 100000);
const batch = Number(process.argv[3] ?? 1000);
const transport = process.argv[4] ?? "sse";
const c = await Cluster.start(1, ["--log-level", "warn"]);
try {
  const b = new Baton({ nodes: c.urls, transport, publishOver: "http" });
  const topic = "bench";
  let t0 = performance.now();
  for (let i = 0; i < total; i += batch) {
    const n = Math.min(batch, total - i);
    await b.publish(topic, Array.from({ length: n }, (_, j) => ({ id: `k${(i + j) % 1000}`, value: { px: 1712.5 + j, ccy: "CNY", n: i + j } })));
  }
  const pubS = (performance.now() - t0) / 1000;

  const sub = b.subscribe(topic);
  t0 = performance.now();
  for await (const ev of sub) if (ev.type === "item" && ev.item.seq === total) break;
  const replayS = (performance.now() - t0) / 1000;

  // The same replay read raw (fetch, counting items' "id:" lines): what
  // the node and fetch cost without the parser and the subscription.
  t0 = performance.now();
  const resp = await fetch(`${c.urls[0]}/v1/topics/${topic}/events`);
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  let ids = 0;
  let tailText = "";
  while (ids < total) {
    const { value, done } = await reader.read();
    if (done) throw new Error("stream ended");
    const text = tailText + dec.decode(value, { stream: true });
    const cut = text.lastIndexOf("\n");
    for (const line of text.slice(0, cut + 1).split("\n")) if (line.startsWith("id: ")) ids++;
    tailText = text.slice(cut + 1);
  }
  await reader.cancel();
  const rawS = (performance.now() - t0) / 1000;

  // Live: one item at a time, publish to delivery, 200 times.
  const live = b.subscribe(topic, { after: total });
  const it = live[Symbol.asyncIterator]();
  const lat = [];
  for (let i = 0; i < 200; i++) {
    const start = performance.now();
    const [, ev] = await Promise.all([b.publish(topic, { id: "live", value: i }), it.next()]);
    if (ev.value.item.value !== i) throw new Error("out of order");
    lat.push(performance.now() - start);
  }
  live.close();
  lat.sort((x, y) => x - y);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(1);
  console.log(JSON.stringify({
    node: process.version, items: total, batch, transport,
    publish_items_per_s: Math.round(total / pubS),
    replay_items_per_s: Math.round(total / replayS),
    raw_stream_items_per_s: Math.round(total / rawS),
    live_publish_to_delivery_ms: { p50: q(0.5), p99: q(0.99) },
  }));
} finally {
  await c.stop();
}
