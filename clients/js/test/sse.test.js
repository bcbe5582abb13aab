// The SSE parser: events split anywhere, every line ending, comments.

import assert from "node:assert/strict";
import { it } from "node:test";

import { SSEParser } from "../dist/index.js";

const stream = "retry: 1000\r\n\r\n: hb\nid: 41\nevent: item\ndata: {\"seq\":41}\n\nid: 5\r\nevent: reset\r\ndata: {\"earliest\":6}\r\n\r\n" +
  "data: a\rdata: b\r\r: hb\n\nevent: deleted\ndata:{\"topic\":\"q\"}\n\n" + "id: 99\nevent: item\ndata: never ends";
const want = [
  { event: "item", data: "{\"seq\":41}", id: "41" },
  { event: "reset", data: "{\"earliest\":6}", id: "5" },
  { event: "message", data: "a\nb", id: undefined },
  { event: "deleted", data: "{\"topic\":\"q\"}", id: undefined },
];

it("parses a stream however it is cut into chunks", () => {
  const bytes = new TextEncoder().encode(stream);
  for (let size = 1; size <= bytes.length; size++) {
    const p = new SSEParser();
    const got = [];
    for (let i = 0; i < bytes.length; i += size) got.push(...p.push(bytes.subarray(i, i + size)));
    got.push(...p.end());
    assert.deepEqual(got, want, `chunks of ${size} bytes`);
  }
});

it("keeps a multi-byte character cut between chunks", () => {
  const bytes = new TextEncoder().encode("data: 价格\n\n");
  const p = new SSEParser();
  const got = [...p.push(bytes.subarray(0, 8)), ...p.push(bytes.subarray(8))];
  assert.deepEqual(got, [{ event: "message", data: "价格", id: undefined }]);
});

it("refuses an endless line", () => {
  const p = new SSEParser();
  const chunk = new Uint8Array(1 << 20).fill(97);
  assert.throws(() => {
    for (let i = 0; i < 17; i++) p.push(chunk);
  }, /over/);
});
