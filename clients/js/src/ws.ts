// The WebSocket transport of subscriptions (docs/api.md, "WebSocket"):
// one socket per connection, a subscribe frame per named topic (its
// position as `after`, or `snapshot`) and per pattern (the positions of
// the topics it found), then the item, reset, deleted, snapshot and auth
// frames as StreamEvents.

import { frameError } from "./errors.js";
import { decodeEvent, type StreamEvent } from "./events.js";
import { matchPattern } from "./selection.js";
import type { OpenRequest, Transport } from "./transport.js";
import { probeRef, Socket, type WSSettings } from "./wsconn.js";

const events = new Set(["item", "reset", "deleted", "snapshot", "snapshot_end", "auth"]);

export class WSTransport implements Transport {
  readonly name = "ws";
  #s: WSSettings;

  constructor(s: WSSettings) {
    this.#s = s;
  }

  async *open(req: OpenRequest): AsyncGenerator<StreamEvent> {
    const sock = await Socket.open(this.#s, req.node, req.token, req.signal);
    const onAbort = () => sock.close();
    req.signal.addEventListener("abort", onAbort, { once: true });
    try {
      sock.send(subscribeFrames(req));
      for await (const f of sock.frames()) {
        if (typeof f !== "object" || f === null) continue;
        if (f.type === "error") {
          // Without a ref: a notice (a topic a pattern found over the
          // socket's limit is not followed). With the probe's: the answer
          // that says the socket is alive.
          if (!f.ref || f.ref === probeRef) continue;
          throw frameError(f.error ?? { code: "internal", message: "an error frame without an error" }, req.node);
        }
        if (!events.has(f.type)) continue; // subscribed, unsubscribed, and frames this client does not know
        const ev = decodeEvent(f.type, f, undefined, req.node);
        if (!ev) continue;
        yield ev;
        if (ev.type === "auth") return;
      }
    } finally {
      req.signal.removeEventListener("abort", onAbort);
      sock.close();
    }
  }
}

/** The subscribe frames of a connection: every named topic from its position (or its snapshot), every pattern with the positions of the topics it selects. */
function subscribeFrames(req: OpenRequest): object[] {
  const frames: object[] = [];
  const named = new Set(req.topics);
  for (const t of req.topics) {
    const after = req.positions.get(t) ?? 0;
    if (req.snapshot.has(t)) frames.push({ type: "subscribe", topic: t, snapshot: true, ref: "s" });
    else frames.push({ type: "subscribe", topic: t, after, ref: "s" });
  }
  for (const p of req.patterns) {
    const positions: Record<string, number> = {};
    for (const [t, seq] of req.positions) if (seq > 0 && matchPattern(p, t) && !named.has(t)) positions[t] = seq;
    frames.push(req.snapshotFound ? { type: "subscribe", topic: p, positions, snapshot: true, ref: "s" } : { type: "subscribe", topic: p, positions, ref: "s" });
  }
  return frames;
}
