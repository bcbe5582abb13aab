// One WebSocket to one node's /v1/ws (docs/api.md, "WebSocket"), as both
// WebSocket users (ws.ts: subscriptions; wspublish.ts: publishing) need
// it: opened with the token in the URL (a browser cannot set headers on a
// WebSocket), its messages split into JSON frames in a bounded queue, a
// liveness probe when it is silent, and its end as a typed error.

import { NetworkError, ProtocolError, UsageError } from "./errors.js";
import { errorFrom } from "./transport.js";

/** The WebSocket constructor: globalThis.WebSocket (browsers, Node 22+), or one given (Node 20: the `ws` package, or run with --experimental-websocket). */
export type WebSocketCtor = new (url: string) => WebSocket;

/** What a socket needs from the client. */
export interface WSSettings {
  WebSocket: WebSocketCtor | undefined;
  /** Used to learn why a handshake failed (a WebSocket error says nothing). */
  fetch: typeof fetch;
  credentials: RequestCredentials | undefined;
  /** A socket silent this long is probed; silent as long again, abandoned. */
  idleMs: number;
}

/** Frames received and not yet read beyond which the socket is dropped (the reader is too slow; positions resume it). */
const maxQueued = 10000;
/** The ref of the probe frame: an unsubscribe of nothing, answered at once with an error frame. */
export const probeRef = "baton-client-probe";

/** Close codes that mean the client sent what the server cannot take: retrying would not mend it. */
const refusedCodes = new Set([1003, 1009]);

export class Socket {
  readonly node: string;
  #ws: WebSocket;
  #queue: unknown[] = []; // frames received; those before #head are read
  #head = 0;
  #wake: (() => void) | undefined;
  #end: Error | undefined;
  #idle: ReturnType<typeof setTimeout> | undefined;
  #probed = false;
  #idleMs: number;

  private constructor(node: string, ws: WebSocket, idleMs: number) {
    this.node = node;
    this.#ws = ws;
    this.#idleMs = idleMs;
  }

  /** Opens a socket to node; an unusable token or any refusal is a BatonError, anything else a NetworkError. */
  static async open(s: WSSettings, node: string, token: string | undefined, signal: AbortSignal): Promise<Socket> {
    const Ctor = s.WebSocket ?? (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;
    if (typeof Ctor !== "function") {
      throw new UsageError("no WebSocket: pass options.WebSocket (Node 20: run with --experimental-websocket, or give the ws package's)");
    }
    const url = new URL(`${node}/v1/ws`);
    if (token) url.searchParams.set("access_token", token);
    const httpURL = new URL(url);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    let ws: WebSocket;
    try {
      ws = new Ctor(url.toString());
    } catch (e) {
      throw new NetworkError(node, `websocket: ${String(e)}`, { cause: e });
    }
    const sock = new Socket(node, ws, s.idleMs);
    const opened = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), s.idleMs);
      const done = (ok: boolean) => {
        clearTimeout(t);
        signal.removeEventListener("abort", abort);
        resolve(ok);
      };
      const abort = () => done(false);
      signal.addEventListener("abort", abort, { once: true });
      ws.onopen = () => done(true);
      ws.onclose = () => done(false);
    });
    if (!opened) {
      ws.onopen = ws.onclose = null;
      ws.close();
      if (signal.aborted) throw new NetworkError(node, "aborted");
      throw await handshakeError(s, httpURL, node);
    }
    sock.#listen();
    return sock;
  }

  #listen(): void {
    const ws = this.#ws;
    this.#arm();
    ws.onmessage = (m: MessageEvent) => {
      this.#arm();
      if (typeof m.data !== "string") return this.#fail(new ProtocolError(this.node, "a binary websocket message"));
      if (this.#queue.length - this.#head >= maxQueued) {
        return this.#fail(new NetworkError(this.node, `more than ${maxQueued} frames unread: the reader is too slow`));
      }
      for (const line of m.data.split("\n")) {
        if (line.trim() === "") continue;
        try {
          this.#queue.push(JSON.parse(line));
        } catch (e) {
          return this.#fail(new ProtocolError(this.node, `bad frame: ${String(e)}`, { cause: e }));
        }
      }
      this.#wakeUp();
    };
    ws.onclose = (c: CloseEvent) => {
      const why = `websocket closed: ${c.code}${c.reason ? ` ${c.reason}` : ""}`;
      // 1001 node shutting down, 1008 slow consumer, 4001 token expired
      // (after an auth frame), 1011 a store failure, 1006 the connection
      // lost: each resumes, on this node or another.
      this.#fail(refusedCodes.has(c.code) ? new ProtocolError(this.node, why) : new NetworkError(this.node, why));
    };
    ws.onerror = () => {}; // onclose follows and says how it ended
  }

  /** Restarts the silence timer: silent idleMs, the socket gets a probe; silent as long again, it is dropped. */
  #arm(): void {
    clearTimeout(this.#idle);
    this.#probed = false;
    const tick = () => {
      if (this.#probed) return this.#fail(new NetworkError(this.node, "websocket idle"));
      this.#probed = true;
      this.send([{ type: "unsubscribe", topic: probeRef, ref: probeRef }]);
      this.#idle = setTimeout(tick, this.#idleMs);
    };
    this.#idle = setTimeout(tick, this.#idleMs);
  }

  #fail(err: Error): void {
    if (this.#end) return;
    this.#end = err;
    clearTimeout(this.#idle);
    this.#ws.onmessage = this.#ws.onclose = null;
    this.#ws.close();
    this.#wakeUp();
  }

  #wakeUp(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  /** Whether the socket still runs. */
  get open(): boolean {
    return this.#end === undefined;
  }

  /** Sends frames as one message, each followed by "\n". */
  send(frames: object[]): void {
    if (this.#end) return;
    try {
      this.#ws.send(frames.map((f) => JSON.stringify(f) + "\n").join(""));
    } catch (e) {
      this.#fail(new NetworkError(this.node, `send: ${String(e)}`, { cause: e }));
    }
  }

  /** Ends the socket; frames() then throws err (default: a NetworkError "closed"). */
  close(err?: Error): void {
    this.#fail(err ?? new NetworkError(this.node, "closed"));
  }

  /** The frames received, in order, until the socket ends: then it throws why. */
  async *frames(): AsyncGenerator<any> {
    for (;;) {
      while (this.#head < this.#queue.length) {
        const f = this.#queue[this.#head++];
        if (this.#head === this.#queue.length) {
          this.#queue = [];
          this.#head = 0;
        }
        yield f;
      }
      if (this.#end) throw this.#end;
      await new Promise<void>((r) => (this.#wake = r));
    }
  }
}

/**
 * Why a handshake failed: a WebSocket error never says, so the same URL
 * is asked with a plain GET, which a node answers 400 (not an upgrade)
 * once the token passed, or with the refusal (401, 403, 503) it gave the
 * socket.
 */
async function handshakeError(s: WSSettings, url: URL, node: string): Promise<Error> {
  try {
    const resp = await s.fetch(url, { credentials: s.credentials, cache: "no-store" });
    if (resp.status !== 400 && resp.status !== 200) return await errorFrom(resp, node);
    resp.body?.cancel().catch(() => {});
  } catch {
    // no answer at all: the node is down
  }
  return new NetworkError(node, "websocket handshake failed");
}
