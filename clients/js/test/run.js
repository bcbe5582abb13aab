// Runs every test/*.test.js with node's test runner, one file at a time
// (they start nodes). Node 20 has a WebSocket only with
// --experimental-websocket; Node 22+ has it always (and may drop the flag
// some day), so the flag is given only where it is needed.

import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const files = readdirSync(here).filter((f) => f.endsWith(".test.js")).sort().map((f) => join(here, f));
const flags = typeof globalThis.WebSocket === "function" ? [] : ["--experimental-websocket"];
const r = spawnSync(process.execPath, [...flags, "--test", "--test-concurrency=1", ...files], { stdio: "inherit" });
process.exit(r.status ?? 1);
