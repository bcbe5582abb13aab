// Checks the client's resume encoding (src/streamid.ts) against vectors
// made by Go's wire.StreamID and wire.ParseStreamID: run by
// integration/jsstreamid_test.go as `node test/streamid-vectors.js FILE`.
// Each vector is {id, named, ok, pos?: [[topic, "seq"], ...] (named topics
// first, then found ones in the id's order), error?}. Exits 1 naming every
// disagreement.

import { readFileSync } from "node:fs";

import { encodeStreamId, parseStreamId } from "../dist/index.js";

const vectors = JSON.parse(readFileSync(process.argv[2], "utf8"));
const safe = BigInt(Number.MAX_SAFE_INTEGER);
const bad = [];
let checked = 0;
for (const v of vectors) {
  checked++;
  let got;
  let err;
  try {
    got = parseStreamId(v.id, v.named);
  } catch (e) {
    err = e;
  }
  const big = v.ok && v.pos.some(([, p]) => BigInt(p) > safe);
  if (!v.ok || big) {
    // Refused by Go, or holding a seq past what a JS number keeps exactly: the client refuses it too.
    if (!err) bad.push(`${JSON.stringify(v.id)} (named ${JSON.stringify(v.named)}): parsed, Go says ${v.error ?? "a seq beyond 2^53"}`);
    else if (big && !/safe integer/.test(err.message)) bad.push(`${JSON.stringify(v.id)}: refused for ${err.message}, want the safe-integer refusal`);
    continue;
  }
  if (err) {
    bad.push(`${JSON.stringify(v.id)} (named ${JSON.stringify(v.named)}): refused (${err.message}), Go parses it`);
    continue;
  }
  const want = v.pos.map(([t, p]) => [t, Number(p)]);
  const have = [...v.named.map((t, i) => [t, got.named[i]]), ...got.found];
  if (JSON.stringify(have) !== JSON.stringify(want)) {
    bad.push(`${JSON.stringify(v.id)}: parsed ${JSON.stringify(have)}, Go ${JSON.stringify(want)}`);
    continue;
  }
  const again = encodeStreamId(v.named, new Map(want), [...got.found.keys()]);
  if (again !== v.id) bad.push(`${JSON.stringify(want)} encodes as ${JSON.stringify(again)}, Go as ${JSON.stringify(v.id)}`);
}
if (bad.length > 0) {
  console.error(`${bad.length} of ${checked} vectors disagree:\n${bad.slice(0, 50).join("\n")}`);
  process.exit(1);
}
console.log(`${checked} vectors agree`);
