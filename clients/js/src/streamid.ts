// The resume encodings of a multi-topic stream (docs/api.md, "Resume
// encoding of a multi-topic stream"): the compact Last-Event-ID that
// carries every topic's position, and the explicit ?positions= list. The
// same encoding as Go's wire.StreamID and wire.ParseStreamID
// (wire/positions.go); integration/jsstreamid_test.go checks that both
// sides agree on every id, valid or not.

import { UsageError } from "./errors.js";
import { maxStreamTopics, validTopic } from "./selection.js";

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const version = "1";
const checkLen = 4;
/** The server's largest seq, 2^63 - 1 (baton.MaxSeq). */
const maxSeq = (1n << 63n) - 1n;

const digitOf = new Map<string, number>(Array.from(alphabet, (c, i) => [c, i]));

/** Appends the varint digits of position p (a safe integer, 0 or more). */
function encodePos(p: number): string {
  if (!Number.isSafeInteger(p) || p < 0) throw new UsageError(`position ${p}: want a non-negative safe integer`);
  let out = alphabet[p % 32];
  // 5-bit groups, high first; every digit but the last is a continuation (32 + group).
  for (let v = Math.floor(p / 32); v > 0; v = Math.floor(v / 32)) out = alphabet[32 + (v % 32)] + out;
  return out;
}

/** The check digits of the sorted named topics: FNV-1a (32 bits) of each followed by "\n", low 24 bits. */
function check(named: readonly string[]): string {
  let h = 0x811c9dc5;
  const feed = (c: number) => {
    h ^= c;
    h = Math.imul(h, 0x01000193) >>> 0;
  };
  for (const t of named) {
    // Topic names are ASCII (validTopic): a char code is a byte.
    for (let i = 0; i < t.length; i++) feed(t.charCodeAt(i) & 0xff);
    feed(10);
  }
  let out = "";
  for (let i = 0; i < checkLen; i++) out += alphabet[(h >>> (6 * (checkLen - 1 - i))) & 63];
  return out;
}

/**
 * The Last-Event-ID of a stream whose named topics (the topic= values that
 * are not patterns) are `named`, sorted and unique, with each topic's
 * position in positions (absent: 0); found are the topics found by a
 * pattern, in the order given.
 */
export function encodeStreamId(named: readonly string[], positions: ReadonlyMap<string, number>, found: Iterable<string> = []): string {
  let id = version + check(named);
  for (const t of named) id += encodePos(positions.get(t) ?? 0);
  for (const t of found) id += `~${t}:${encodePos(positions.get(t) ?? 0)}`;
  return id;
}

/** The positions a stream id carries. */
export interface StreamPositions {
  /** The named topics' positions, by index in the sorted named list. */
  named: number[];
  /** The positions of topics found by a pattern, in the id's order. */
  found: Map<string, number>;
}

/** Reads one varint at s[i..]; returns it and the index after it. */
function parsePos(s: string, i: number): [number, number] {
  let v = 0n;
  for (let j = i; j < s.length; j++) {
    const d = digitOf.get(s[j]);
    if (d === undefined) throw new Error(`character ${JSON.stringify(s[j])} is not a position digit`);
    if (j === i && d === 32) throw new Error("position with a leading zero digit");
    if (v > maxSeq >> 5n) throw new Error(`position beyond ${maxSeq}`);
    v = (v << 5n) | BigInt(d & 31);
    if (d < 32) {
      if (v > maxSeq) throw new Error(`position beyond ${maxSeq}`);
      // Seqs past 2^53 are valid for the server but not exact in a JS number.
      if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`position beyond ${Number.MAX_SAFE_INTEGER} (not a safe integer)`);
      return [Number(v), j + 1];
    }
  }
  throw new Error("position cut short");
}

/**
 * Reads a multi-topic stream's id against the stream's sorted named
 * topics, as the server does (wire.ParseStreamID); throws an Error saying
 * what is wrong. One difference: a position beyond Number.MAX_SAFE_INTEGER
 * is refused here (the server takes up to 2^63 - 1).
 */
export function parseStreamId(id: string, named: readonly string[]): StreamPositions {
  if (id.length < 1 + checkLen || id[0] !== version) {
    throw new Error(`not a multi-topic stream id (want version ${version} and ${checkLen} check digits)`);
  }
  if (id.slice(1, 1 + checkLen) !== check(named)) throw new Error("made for another list of topics (check digits differ)");
  const out: StreamPositions = { named: [], found: new Map() };
  const namedSet = new Set(named);
  let i = 1 + checkLen;
  for (let k = 0; k < named.length; k++) {
    try {
      [out.named[k], i] = parsePos(id, i);
    } catch (e) {
      throw new Error(`position of topic ${k + 1}: ${(e as Error).message}`);
    }
  }
  while (i < id.length) {
    if (id[i] !== "~") throw new Error(`want ~ before a found topic, got ${JSON.stringify(id[i])}`);
    const colon = id.indexOf(":", i + 1);
    if (colon < 0) throw new Error("found topic without ':'");
    const name = id.slice(i + 1, colon);
    if (!validTopic(name)) throw new Error(`found topic: ${JSON.stringify(name)} is not a topic name`);
    if (namedSet.has(name)) throw new Error(`found topic ${JSON.stringify(name)} is also named`);
    if (out.found.has(name)) throw new Error(`found topic ${JSON.stringify(name)} twice`);
    if (named.length + out.found.size >= maxStreamTopics) throw new Error(`more than ${maxStreamTopics} topics`);
    let p: number;
    try {
      [p, i] = parsePos(id, colon + 1);
    } catch (e) {
      throw new Error(`position of topic ${JSON.stringify(name)}: ${(e as Error).message}`);
    }
    out.found.set(name, p);
  }
  return out;
}

/** The ?positions= value of positions: "topic:seq" pairs sorted by topic (wire.FormatPositions). */
export function formatPositions(positions: ReadonlyMap<string, number>): string {
  return [...positions.keys()].sort().map((t) => `${t}:${positions.get(t)}`).join(",");
}
