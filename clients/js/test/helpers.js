// What the tests against real nodes share: fast retries, a reader of a
// subscription, a publisher that runs until stopped, and the exactly-once
// check.

import assert from "node:assert/strict";

/** Fast retries: the tests kill nodes and wait for the next. */
export const quick = { backoff: { initialMs: 20, maxMs: 500 }, streamIdleMs: 3000, requestTimeoutMs: 3000 };

/** Reads sub in the background into got (events) until it ends; done resolves with the error it ended with, if any. */
export function collect(sub) {
  const st = { got: [], items: [], done: undefined };
  st.done = (async () => {
    try {
      for await (const ev of sub) {
        st.got.push(ev);
        if (ev.type === "item") st.items.push(ev.item);
      }
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  return st;
}

/** A publisher of one update at a time until stopped; acked maps seq to msg id. */
export function startSource(client, topic) {
  const src = { acked: new Map(), stopped: false, err: undefined };
  src.done = (async () => {
    for (let i = 0; !src.stopped; i++) {
      try {
        const [r] = await client.publish(topic, { id: `k${i % 10}`, value: { n: i } }, { msgId: `src-${i}` });
        src.acked.set(r.seq, r.msgId);
      } catch (e) {
        src.err = e;
        return;
      }
    }
  })();
  src.stop = async () => {
    src.stopped = true;
    await src.done;
    if (src.err) throw src.err;
    return Math.max(...src.acked.keys());
  };
  return src;
}

/** Asserts items are seqs 1..n, each once, in order. */
export function assertExactlyOnce(items, n) {
  assert.deepEqual(items.map((it) => it.seq), Array.from({ length: n }, (_, i) => i + 1));
}

