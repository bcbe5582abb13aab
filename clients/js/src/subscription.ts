// Subscription: the streams of topics and patterns as one async
// iterator, across connections, nodes and transports. The contract
// (docs/api.md, "The event stream", "Many topics on one stream"): the
// application receives every published item of each topic once, in seq
// order; items before a reset's `earliest` are reported gone, never
// skipped silently; a snapshot is whole before the items after it.

import type { Baton } from "./client.js";
import { BatonError, GapError, NetworkError, ProtocolError, UsageError } from "./errors.js";
import { child, sleep } from "./nodes.js";
import { Selection } from "./selection.js";
import type { SubscriptionEvent } from "./types.js";

export interface SubscribeOptions {
  /** One topic: deliver items with seq > after (default 0: from the start); the position a terminal saved. */
  after?: number;
  /** Where topics start (topic to the last seq seen; absent: 0), e.g. Subscription.positions saved by an earlier run. */
  positions?: Record<string, number> | ReadonlyMap<string, number>;
  /**
   * Start each topic at position 0 with its snapshot (docs/api.md,
   * "Starting from the snapshot"), named or selected by a pattern when the
   * connection begins: `snapshot_start`, `snapshot` events, `snapshot_end`,
   * then its items. A topic a pattern finds later is new: its items from
   * the beginning.
   */
  snapshot?: boolean;
  /** Aborting it ends the iteration (quietly: the for-await loop ends). */
  signal?: AbortSignal;
}

/** The end of a connection because its token expired (an `auth` event). */
class TokenExpired extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/**
 * A subscription to topics and patterns. Iterate it once with for await; breaking
 * out of the loop, close() or the signal ends it and its connection.
 * The iteration throws BatonError for a refusal that retrying cannot mend
 * (400, 403, a 401 without getToken or with a fresh token refused),
 * GapError or ProtocolError for a broken stream; a node failure is never
 * thrown: the subscription resumes on the next node after the last seq
 * delivered.
 */
export class Subscription implements AsyncIterable<SubscriptionEvent> {
  /** The first named topic (or pattern): the one topic of `subscribe(topic)`. */
  readonly topic: string;
  #client: Baton;
  #sel: Selection;
  /** One named topic, no pattern: its deletion ends the iteration. */
  #single: boolean;
  #snapshot: boolean;
  /** Every named topic and every topic found by a pattern: the last seq delivered. */
  #positions: Map<string, number>;
  /** The topics whose snapshot began on the open connection. */
  #snapping = new Set<string>();
  #ctl: AbortController;
  #release: () => void;
  #started = false;
  #node = "";

  /** @internal Made by Baton.subscribe. */
  constructor(client: Baton, topics: string | readonly string[], opts: SubscribeOptions) {
    this.#sel = new Selection(typeof topics === "string" ? [topics] : topics);
    this.topic = this.#sel.topics[0] ?? this.#sel.patterns[0];
    this.#single = this.#sel.topics.length === 1 && this.#sel.patterns.length === 0;
    this.#snapshot = opts.snapshot === true;
    this.#positions = new Map(this.#sel.topics.map((t) => [t, 0]));
    const given = opts.positions instanceof Map ? opts.positions : Object.entries(opts.positions ?? {});
    for (const [t, p] of given) {
      if (!this.#sel.has(t)) throw new UsageError(`subscribe: positions: ${JSON.stringify(t)} is not a topic of the subscription`);
      this.#positions.set(t, check(p, `positions[${t}]`));
    }
    if (opts.after !== undefined) {
      if (!this.#single) throw new UsageError("subscribe: after is for one topic; give positions");
      this.#positions.set(this.topic, check(opts.after, "after"));
    }
    this.#client = client;
    const { ctl, release } = child(opts.signal);
    this.#ctl = ctl;
    this.#release = release;
  }

  /** The last seq delivered of `topic` (or skipped by a reset, or a snapshot's seq): resume after it, here or in a later run. */
  get position(): number {
    return this.#positions.get(this.topic) ?? 0;
  }

  /** Every topic's position (named ones, and those a pattern found): give it as `positions` to resume in a later run. */
  get positions(): Map<string, number> {
    return new Map(this.#positions);
  }

  /** The node of the open connection ("" while none is open). */
  get node(): string {
    return this.#node;
  }

  /** Ends the subscription: the iteration ends, the connection closes. */
  close(): void {
    this.#ctl.abort();
    this.#release();
  }

  [Symbol.asyncIterator](): AsyncIterator<SubscriptionEvent> {
    if (this.#started) throw new UsageError("a subscription is iterated once");
    this.#started = true;
    return this.#run();
  }

  async *#run(): AsyncGenerator<SubscriptionEvent> {
    const c = this.#client;
    const signal = this.#ctl.signal;
    let attempt = 0;
    let freshRefused = false; // a 401 at a stream's start came right after a new token
    try {
      while (!signal.aborted) {
        const node = c.ring.pick();
        const conn = child(signal);
        let err: unknown;
        let progressed = false;
        let opened = false;
        try {
          this.#snapping.clear();
          const snapshot = new Set(this.#snapshot ? this.#sel.topics.filter((t) => this.#positions.get(t) === 0) : []);
          const stream = c.transport.open({
            node, topics: this.#sel.topics, patterns: this.#sel.patterns, positions: this.#positions, snapshot, snapshotFound: this.#snapshot && this.#sel.patterns.length > 0, token: c.token, signal: conn.ctl.signal,
          });
          for await (const ev of stream) {
            opened = true;
            this.#node = node;
            if (ev.type === "auth") throw new TokenExpired(ev.code, ev.message);
            // A topic neither named nor selected by a pattern is not this subscription's.
            if (!this.#sel.has(ev.topic)) continue;
            const last = this.#positions.get(ev.topic) ?? 0; // a topic a pattern found starts at 0
            switch (ev.type) {
              case "item": {
                if (ev.item.seq <= last) continue; // seen before, over the wire at least once
                if (ev.item.seq !== last + 1) throw new GapError(ev.topic, last, ev.item.seq, node);
                this.#positions.set(ev.topic, ev.item.seq);
                progressed = true;
                yield { type: "item", topic: ev.topic, item: ev.item, node };
                break;
              }
              case "reset":
                // The node's word: the topic continues there, even below
                // the position (a topic made again).
                this.#positions.set(ev.topic, ev.earliest - 1);
                progressed = true;
                yield { type: "reset", topic: ev.topic, earliest: ev.earliest, node };
                break;
              case "deleted":
                // A named topic waits for a topic of that name to be
                // made again, from its start; a found one is forgotten.
                if (this.#sel.isNamed(ev.topic)) this.#positions.set(ev.topic, 0);
                else this.#positions.delete(ev.topic);
                progressed = true;
                yield { type: "deleted", topic: ev.topic, node };
                if (this.#single) return;
                break;
              case "snapshot":
              case "snapshot_end":
                if (!this.#snapshot || last !== 0) {
                  throw new ProtocolError(node, `a ${ev.type} event of ${JSON.stringify(ev.topic)}, not a topic whose snapshot is to come`);
                }
                if (!this.#snapping.has(ev.topic)) {
                  this.#snapping.add(ev.topic);
                  yield { type: "snapshot_start", topic: ev.topic, node };
                }
                if (ev.type === "snapshot") {
                  yield { type: "snapshot", topic: ev.topic, item: ev.item, node };
                  break;
                }
                this.#snapping.delete(ev.topic);
                this.#positions.set(ev.topic, ev.seq);
                progressed = true;
                yield { type: "snapshot_end", topic: ev.topic, seq: ev.seq, node };
                break;
            }
          }
          opened = true;
          err = new NetworkError(node, "stream ended");
        } catch (e) {
          err = e;
        } finally {
          this.#node = "";
          conn.ctl.abort();
          conn.release();
        }
        if (signal.aborted) return;

        if (err instanceof TokenExpired || (err instanceof BatonError && err.status === 401)) {
          const atOpen = !(err instanceof TokenExpired);
          const refusal = err instanceof TokenExpired ? new BatonError(401, { code: err.code, message: err.message }, node) : err;
          if (!c.canRefresh || (atOpen && freshRefused)) throw refusal;
          this.#retried(node, refusal, attempt);
          await c.refreshToken(atOpen ? "refused" : "expired");
          freshRefused = atOpen;
          continue;
        }
        if (opened) freshRefused = false;
        if (err instanceof BatonError && !err.temporary) throw err;
        if (!(err instanceof BatonError) && !(err instanceof NetworkError)) throw err; // GapError, ProtocolError, a bug
        if (progressed) attempt = 0;
        if (err instanceof NetworkError && !opened) c.ring.markDown(node);
        let wait = c.ring.delay(attempt);
        if (err instanceof BatonError && err.retryAfter !== undefined) wait = Math.max(wait, err.retryAfter * 1000);
        this.#retried(node, err, attempt);
        await sleep(wait, signal);
        attempt++;
      }
    } finally {
      this.close();
    }
  }

  #retried(node: string, error: unknown, attempt: number): void {
    this.#client.onRetry?.({ op: "subscribe", node, error, attempt });
  }
}

/** A position given by the caller, checked. */
function check(p: unknown, what: string): number {
  if (!Number.isSafeInteger(p) || (p as number) < 0) throw new UsageError(`subscribe: ${what} must be a non-negative integer`);
  return p as number;
}
