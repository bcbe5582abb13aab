// Publishing over a WebSocket (docs/api.md, "WebSocket": the publish
// frame, answered by an ack with the receipts or an error frame). One
// socket at a time, to one node, shared by every publish of the client
// and closed after a while without one. Baton.publish (client.ts) keeps
// the retry rules: the same msg ids on every attempt, over HTTP or here.

import { BatonError, frameError, NetworkError } from "./errors.js";
import { Socket, type WSSettings } from "./wsconn.js";

/** A receipt as the server writes it. */
export interface WireReceipt {
  seq: number;
  hash: string;
  msg_id: string;
  duplicate?: boolean;
}

interface Pending {
  sock: Socket;
  resolve: (items: WireReceipt[]) => void;
  reject: (e: unknown) => void;
}

/** A publish socket unused this long is closed (a Node process is not kept alive by it for ever). */
const idleCloseMs = 30000;

export class WSPublisher {
  #s: WSSettings;
  #sock: Socket | undefined;
  #token: string | undefined;
  #opening: Promise<Socket> | undefined;
  #ctl = new AbortController();
  #pending = new Map<string, Pending>();
  #refs = 0;
  #idle: ReturnType<typeof setTimeout> | undefined;

  constructor(s: WSSettings) {
    this.#s = s;
  }

  /** The node of the open socket: publishing stays there while it runs. */
  get node(): string | undefined {
    return this.#sock?.open ? this.#sock.node : undefined;
  }

  /**
   * Sends one publish frame to node (the open socket's if one runs) and
   * returns the ack's receipts; an error frame is a BatonError, a socket
   * that ends or stays silent for timeoutMs a NetworkError.
   */
  async publish(node: string, token: string | undefined, topic: string, items: unknown[], timeoutMs: number, signal?: AbortSignal): Promise<WireReceipt[]> {
    clearTimeout(this.#idle);
    const sock = await this.#socket(node, token);
    const ref = `p${++this.#refs}`;
    try {
      return await new Promise<WireReceipt[]>((resolve, reject) => {
        const t = setTimeout(() => {
          // Whether it landed is unknown: the retry's msg ids tell.
          sock.close(new NetworkError(sock.node, `no ack in ${timeoutMs} ms`));
        }, timeoutMs);
        const abort = () => reject(signal?.reason);
        signal?.addEventListener("abort", abort, { once: true });
        const settle = (f: () => void) => {
          clearTimeout(t);
          signal?.removeEventListener("abort", abort);
          this.#pending.delete(ref);
          f();
        };
        this.#pending.set(ref, { sock, resolve: (v) => settle(() => resolve(v)), reject: (e) => settle(() => reject(e)) });
        sock.send([{ type: "publish", topic, items, ref }]);
      });
    } finally {
      if (this.#pending.size === 0) {
        this.#idle = setTimeout(() => this.#sock?.close(), idleCloseMs);
      }
    }
  }

  /** The open socket to node with token, opened if needed. */
  async #socket(node: string, token: string | undefined): Promise<Socket> {
    for (;;) {
      if (this.#opening) {
        await this.#opening.catch(() => {});
        continue;
      }
      const s = this.#sock;
      if (s?.open && s.node === node && this.#token === token) return s;
      s?.close();
      this.#opening = Socket.open(this.#s, node, token, this.#ctl.signal);
      try {
        const sock = await this.#opening;
        this.#sock = sock;
        this.#token = token;
        this.#read(sock);
        return sock;
      } finally {
        this.#opening = undefined;
      }
    }
  }

  /** Answers the pending publishes from sock's frames until it ends. */
  async #read(sock: Socket): Promise<void> {
    let end: unknown;
    try {
      for await (const f of sock.frames()) {
        if (typeof f !== "object" || f === null) continue;
        const p = typeof f.ref === "string" ? this.#pending.get(f.ref) : undefined;
        if (p && p.sock !== sock) continue;
        if (f.type === "ack" && p) {
          p.resolve(Array.isArray(f.items) ? f.items : []);
        } else if (f.type === "error" && p) {
          const e = frameError(f.error ?? { code: "internal", message: "an error frame without an error" }, sock.node);
          // A token refused mid-socket: the next attempt opens a socket with a new one.
          if (e.status === 401) sock.close();
          p.reject(e);
        } else if (f.type === "auth") {
          sock.close(new BatonError(401, { code: String(f.code ?? "unauthorized"), message: String(f.message ?? "token expired") }, sock.node));
        }
      }
    } catch (e) {
      end = e;
    }
    if (this.#sock === sock) this.#sock = undefined;
    for (const p of [...this.#pending.values()]) if (p.sock === sock) p.reject(end ?? new NetworkError(sock.node, "closed"));
  }

  /** Closes the socket (a later publish opens another); publishes under way fail with a NetworkError. */
  close(): void {
    clearTimeout(this.#idle);
    this.#ctl.abort();
    this.#ctl = new AbortController();
    this.#sock?.close();
  }
}
