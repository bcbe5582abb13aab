// The resume encoding of a multi-topic stream (src/streamid.ts) on the
// example of docs/api.md; integration/jsstreamid_test.go checks it against
// Go's on thousands of ids.

import assert from "node:assert/strict";
import { it } from "node:test";

import { encodeStreamId, formatPositions, parseStreamId } from "../dist/index.js";

it("encodes and reads the id of docs/api.md's example", () => {
  const named = ["quotes.a", "quotes.b"];
  const pos = new Map([["quotes.a", 6], ["quotes.b", 40], ["news.x", 1000]]);
  assert.equal(encodeStreamId(named, pos, ["news.x"]), "1qYaqGhI~news.x:_I");
  const got = parseStreamId("1qYaqGhI~news.x:_I", named);
  assert.deepEqual(got.named, [6, 40]);
  assert.deepEqual([...got.found], [["news.x", 1000]]);
});

it("refuses an id made for other topics, a leading zero digit and a seq past 2^53", () => {
  assert.throws(() => parseStreamId("1qYaqGhI", ["quotes.a", "quotes.c"]), /another list of topics/);
  assert.throws(() => parseStreamId("1qYaqgGhI", ["quotes.a", "quotes.b"]), /leading zero/);
  const big = encodeStreamId(["a"], new Map([["a", Number.MAX_SAFE_INTEGER]]));
  assert.deepEqual(parseStreamId(big, ["a"]).named, [Number.MAX_SAFE_INTEGER]);
  // 2^53: a top group of 8 (continuation digit 32 + 8, "o"), nine zero continuation digits ("g"), a final zero ("A").
  const past = `${big.slice(0, 5)}o${"g".repeat(9)}A`;
  assert.throws(() => parseStreamId(past, ["a"]), /safe integer/);
});

it("formats ?positions= sorted by topic", () => {
  assert.equal(formatPositions(new Map([["quotes.b", 7], ["quotes.a", 10]])), "quotes.a:10,quotes.b:7");
});
