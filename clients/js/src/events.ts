// What every transport reads from a node, as StreamEvents: the data of an
// event of an event stream (one topic or many) and the WebSocket frames
// of the same names carry the same fields (docs/api.md, "The event
// stream", "Many topics on one stream", "WebSocket").

import { ProtocolError } from "./errors.js";
import type { Item } from "./types.js";

/** What a transport reports from a connection. */
export type StreamEvent =
  | { type: "item"; topic: string; item: Item }
  | { type: "reset"; topic: string; earliest: number }
  | { type: "deleted"; topic: string }
  /** A data id's latest item, in a topic's snapshot (which the subscription asked for). */
  | { type: "snapshot"; topic: string; item: Item }
  /** The topic's snapshot is whole, as of seq: its items after seq follow. */
  | { type: "snapshot_end"; topic: string; seq: number }
  /** The token expired mid-stream: the connection is over; resume with a fresh token. */
  | { type: "auth"; code: string; message: string };

/** The item of an `item` or `snapshot` event's data, in the client's field names. */
function itemFrom(topic: string, d: any): Item {
  if (!Number.isSafeInteger(d.seq) || d.seq < 1 || typeof d.id !== "string") throw new Error("no seq or id");
  return {
    topic, seq: d.seq, id: d.id, value: d.value, hash: d.hash, epoch: d.epoch, publisher: d.publisher, msgId: d.msg_id,
    deleted: d.deleted === true,
  };
}

/**
 * Turns one event (its type and its data, parsed) into a StreamEvent;
 * undefined for a type this client does not know. topic is the stream's
 * one topic, or undefined when the data names it (many topics, WebSocket).
 * A malformed event is a ProtocolError.
 */
export function decodeEvent(type: string, d: any, topic: string | undefined, node: string): StreamEvent | undefined {
  try {
    if (typeof d !== "object" || d === null) throw new Error("data is not an object");
    const t = topic ?? d.topic;
    if (type !== "auth" && (typeof t !== "string" || t === "")) throw new Error("no topic");
    switch (type) {
      case "item":
      case "snapshot":
        return { type, topic: t, item: itemFrom(t, d) };
      case "snapshot_end":
        if (!Number.isSafeInteger(d.seq) || d.seq < 0) throw new Error("no seq");
        return { type, topic: t, seq: d.seq };
      case "reset":
        if (!Number.isSafeInteger(d.earliest) || d.earliest < 1) throw new Error("no earliest");
        return { type, topic: t, earliest: d.earliest };
      case "deleted":
        return { type, topic: t };
      case "auth":
        return { type, code: String(d.code ?? "unauthorized"), message: String(d.message ?? "") };
    }
  } catch (e) {
    throw new ProtocolError(node, `bad ${type} event: ${(e as Error).message}`, { cause: e });
  }
  return undefined;
}

/** Parses an event's JSON data; malformed JSON is a ProtocolError. */
export function parseData(type: string, data: string, node: string): unknown {
  try {
    return JSON.parse(data);
  } catch (e) {
    throw new ProtocolError(node, `bad ${type} event: ${String(e)}`, { cause: e });
  }
}
