// Real `baton serve` processes for the client's tests, on the embedded
// SQLite store, as integration/main_test.go starts them: port 0, a ready
// file naming the address, readiness by /readyz. Waits poll with a
// deadline; nothing sleeps in place of synchronisation.

import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, "../../..");

let built;

/** The baton binary: $BATON_BIN (the Go integration test passes its own), else built now with go build. */
export function batonBin() {
  if (process.env.BATON_BIN) return process.env.BATON_BIN;
  if (!built) {
    const dir = join(here, "..", ".cache");
    mkdirSync(dir, { recursive: true });
    built = join(dir, "baton");
    execFileSync("go", ["build", "-o", built, "./cmd/baton"], { cwd: repoRoot, stdio: ["ignore", "inherit", "inherit"] });
  }
  return built;
}

/** Polls fn (sync or async; truthy: done) every 10 ms until it holds, or fails after ms naming what. */
export async function until(what, ms, fn) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = undefined;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${last.message}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A `baton serve` child process. */
export class Node {
  constructor(cluster, name) {
    this.cluster = cluster;
    this.name = name;
    this.addr = "";
  }

  get url() {
    return `http://${this.addr}`;
  }

  async start() {
    const c = this.cluster;
    const ready = join(c.dir, `${this.name}.ready`);
    rmSync(ready, { force: true });
    const log = openSync(join(c.dir, `${this.name}.log`), "a");
    const args = ["serve", "--store", c.store, "--listen", this.addr || "127.0.0.1:0", "--node", this.name,
      "--ready-file", ready, "--data-dir", join(c.dir, `${this.name}.data`),
      "--lease-ttl", "1s", "--sse-heartbeat", "200ms", "--log-level", "debug", ...c.extra];
    this.proc = spawn(batonBin(), args, { stdio: ["ignore", log, log] });
    this.exited = new Promise((r) => this.proc.once("exit", r));
    let gone = false;
    this.exited.then(() => { gone = true; });
    await until(`${this.name} to write its ready file`, 30000, () => {
      if (gone) throw new Error(`${this.name} exited; see ${join(c.dir, this.name + ".log")}`);
      try {
        const r = JSON.parse(readFileSync(ready, "utf8"));
        if (r.addr) this.addr = r.addr;
        return !!r.addr;
      } catch {
        return false;
      }
    });
    await until(`${this.name} to be ready`, 30000, async () => (await fetch(`${this.url}/readyz`)).status === 200);
    return this;
  }

  get alive() {
    return this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** SIGKILL, and wait for the exit. */
  async kill() {
    if (!this.alive) return;
    this.proc.kill("SIGKILL");
    await this.exited;
  }
}

/** n nodes on one fresh SQLite store; extra are more serve flags for every node. */
export class Cluster {
  constructor(extra = []) {
    this.dir = mkdtempSync(join(tmpdir(), "baton-js-"));
    this.store = `sqlite://${join(this.dir, "baton.db")}`;
    this.extra = extra;
    this.nodes = [];
  }

  static async start(n, extra = []) {
    const c = new Cluster(extra);
    try {
      for (let i = 1; i <= n; i++) {
        const node = new Node(c, `n${i}`);
        c.nodes.push(node);
        await node.start();
      }
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  get urls() {
    return this.nodes.map((n) => n.url);
  }

  node(name) {
    return this.nodes.find((n) => n.name === name);
  }

  /** GET path from any live node, as JSON (token: the admin token, if the nodes need one). */
  async get(path, token) {
    let last;
    for (const n of this.nodes.filter((n) => n.alive)) {
      try {
        const r = await fetch(n.url + path, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
        if (r.status === 200) return await r.json();
        last = new Error(`GET ${path}: ${r.status} ${await r.text()}`);
      } catch (e) {
        last = e;
      }
    }
    throw last ?? new Error("no live node");
  }

  /** Sends method path with a JSON body to the first live node; returns the status and the parsed body. */
  async send(method, path, body, token) {
    const n = this.nodes.find((n) => n.alive);
    const headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    const r = await fetch(n.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: r.status, body: await r.json() };
  }

  /** The live node holding topic's lease, once there is one. */
  async holder(topic) {
    let h;
    await until(`a live holder of ${topic}`, 30000, async () => {
      const st = await this.get(`/v1/topics/${topic}/lock`);
      h = st.held ? this.node(st.lease.holder) : undefined;
      return h && h.alive;
    });
    return h;
  }

  /** Kills every node; on failure, keeps the directory and prints where the logs are. */
  async stop(keep = false) {
    await Promise.all(this.nodes.map((n) => n.kill()));
    if (keep) console.error(`node logs kept in ${this.dir}`);
    else rmSync(this.dir, { recursive: true, force: true });
  }
}

/** An HMAC key file for --jwt-key, and a function minting tokens with `baton token`. */
export function tokenKey(dir) {
  const file = join(dir, "jwt.key");
  writeFileSync(file, randomBytes(32).toString("hex") + "\n", { mode: 0o600 });
  return {
    file,
    mint: (...args) => execFileSync(batonBin(), ["token", "--key", file, ...args], { encoding: "utf8" }).trim(),
  };
}
