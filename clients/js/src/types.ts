// The client's data types: what a subscription yields and what a publish
// sends and returns. Field names are camelCase; the wire's are in
// docs/api.md (msg_id is msgId here).

/** A published item, as a subscription delivers it. */
export interface Item {
  topic: string;
  seq: number;
  /** The data id. */
  id: string;
  /** The value, parsed from JSON. */
  value: unknown;
  /** The item hash (docs/api.md, "Item hash"), 64 hex characters. */
  hash: string;
  /** The lease epoch and the node that published it. */
  epoch: number;
  publisher: string;
  msgId: string;
  /** True on a tombstone: the data id left the topic's snapshot (docs/api.md, "The event stream"). */
  deleted: boolean;
}

/**
 * One step of a subscription: an item, a reset (items before `earliest`
 * are gone), a topic's deletion, or a topic's snapshot: `snapshot_start`
 * (drop what an earlier, broken snapshot of the topic gave), `snapshot`
 * events (a data id's latest item: apply in order, a later one of the same
 * id replaces an earlier, a `deleted` one removes the id), then
 * `snapshot_end` (the state as of seq; items from seq + 1 follow).
 */
export type SubscriptionEvent =
  | { type: "item"; topic: string; item: Item; node: string }
  | { type: "reset"; topic: string; earliest: number; node: string }
  | { type: "deleted"; topic: string; node: string }
  | { type: "snapshot_start"; topic: string; node: string }
  | { type: "snapshot"; topic: string; item: Item; node: string }
  | { type: "snapshot_end"; topic: string; seq: number; node: string };

/** One update to publish. */
export interface Update {
  /** The data id. */
  id: string;
  /** Any JSON value (null included). */
  value: unknown;
  /** The message id: made by the client (crypto.randomUUID) when absent, so a retry is never a duplicate. */
  msgId?: string;
  /** True makes the update a tombstone: delivered like any item, it removes id from the topic's snapshot. */
  deleted?: boolean;
}

/** The answer to one published update. */
export interface Receipt {
  seq: number;
  hash: string;
  msgId: string;
  /** True when the msg id was taken before: seq and hash are the original item's. */
  duplicate: boolean;
}
