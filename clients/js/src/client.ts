// Baton: the client's entry point. It holds the node list, the token and
// the HTTP settings; publish is here, subscriptions in subscription.ts.

import { BatonError, NetworkError, UsageError } from "./errors.js";
import { child, NodeRing, sleep, type Backoff } from "./nodes.js";
import { Subscription, type SubscribeOptions } from "./subscription.js";
import { SSETransport } from "./ssetransport.js";
import { authorize, errorFrom, type HTTPSettings, type Transport } from "./transport.js";
import type { Receipt, Update } from "./types.js";
import { WSTransport } from "./ws.js";
import type { WebSocketCtor, WSSettings } from "./wsconn.js";
import { WSPublisher, type WireReceipt } from "./wspublish.js";

/** Why the client asks for a new token. */
export type TokenReason = "expired" | "refused";

export interface BatonOptions {
  /** Base URLs of the nodes, e.g. ["http://10.0.0.5:8080", "http://10.0.0.6:8080"]. Every node serves the same API. */
  nodes: string[];
  /** The token (a JWT) to send, if the nodes run with --jwt-key. */
  token?: string;
  /**
   * Gives a new token when a stream ends with an `auth` event (its token
   * expired: "expired") or a node answers 401 ("refused"). The client
   * resumes with it after the last seq delivered.
   */
  getToken?: (reason: TokenReason) => string | Promise<string>;
  /** Where the token goes: the Authorization header (default), or the access_token query parameter. */
  tokenIn?: "header" | "query";
  /** fetch's credentials mode; in a browser, "include" sends the baton_token cookie (the page's origin must be in the nodes' --cors-origins). */
  credentials?: RequestCredentials;
  /** Backoff after every node failed in turn (default {initialMs: 100, maxMs: 5000}). */
  backoff?: Partial<Backoff>;
  /** One publish request's time limit (default 5000 ms). */
  requestTimeoutMs?: number;
  /** How long publish keeps retrying (default 30000 ms). */
  publishTimeoutMs?: number;
  /** A stream that delivers no byte for this long is abandoned and resumed elsewhere (default 15000 ms; nodes send a heartbeat every 5 s). */
  streamIdleMs?: number;
  /** The fetch to use (default globalThis.fetch). */
  fetch?: typeof fetch;
  /**
   * How subscriptions read (default "sse"): "sse", event streams (the
   * one-topic stream for one topic, else the many-topics stream); "ws",
   * one WebSocket per subscription; or a Transport of your own.
   */
  transport?: "sse" | "ws" | Transport;
  /** How publish sends (default "ws" with transport "ws", else "http"): "ws" keeps one WebSocket for publishing, answered by ack frames. */
  publishOver?: "http" | "ws";
  /** The WebSocket constructor (default globalThis.WebSocket: browsers, Node 22+; on Node 20 run node with --experimental-websocket, or pass one). */
  WebSocket?: WebSocketCtor;
  /** Called before every retry, of a publish or of a subscription's connection. */
  onRetry?: (info: RetryInfo) => void;
}

export interface RetryInfo {
  op: "publish" | "subscribe";
  node: string;
  error: unknown;
  /** Attempts failed so far in a row. */
  attempt: number;
}

export interface PublishOptions {
  /** The msg id of a single update (an update's own msgId wins). */
  msgId?: string;
  signal?: AbortSignal;
  /** How long to keep retrying (default: the client's publishTimeoutMs). */
  timeoutMs?: number;
}

export class Baton {
  /** @internal */ readonly ring: NodeRing;
  /** @internal */ readonly transport: Transport;
  /** @internal */ readonly onRetry: ((info: RetryInfo) => void) | undefined;
  #http: HTTPSettings;
  #token: string | undefined;
  #getToken: BatonOptions["getToken"];
  #refreshing: Promise<string> | undefined;
  #requestTimeoutMs: number;
  #publishTimeoutMs: number;
  #wsPub: WSPublisher | undefined;
  /** topic -> the node a publish's answer named as its lease holder (Baton-Holder); at most maxHolders. */
  #holders = new Map<string, string>();

  constructor(o: BatonOptions) {
    if (!o || !Array.isArray(o.nodes) || o.nodes.length === 0) throw new UsageError("nodes: at least one node URL");
    const nodes = o.nodes.map((n) => {
      let u: URL;
      try {
        u = new URL(n);
      } catch {
        throw new UsageError(`nodes: ${JSON.stringify(n)} is not a URL`);
      }
      if (u.protocol !== "http:" && u.protocol !== "https:") throw new UsageError(`nodes: ${n} is not http(s)`);
      return n.replace(/\/+$/, "");
    });
    const f = o.fetch ?? globalThis.fetch;
    if (typeof f !== "function") throw new UsageError("no fetch: pass options.fetch");
    this.ring = new NodeRing(nodes, { initialMs: o.backoff?.initialMs ?? 100, maxMs: o.backoff?.maxMs ?? 5000 });
    this.#http = {
      fetch: f.bind(globalThis),
      tokenIn: o.tokenIn ?? "header",
      credentials: o.credentials,
      idleMs: o.streamIdleMs ?? 15000,
    };
    const ws: WSSettings = { WebSocket: o.WebSocket, fetch: this.#http.fetch, credentials: o.credentials, idleMs: this.#http.idleMs };
    const tr = o.transport ?? "sse";
    if (tr === "sse") this.transport = new SSETransport(this.#http);
    else if (tr === "ws") this.transport = new WSTransport(ws);
    else if (tr && typeof tr === "object" && typeof tr.open === "function") this.transport = tr;
    else throw new UsageError(`transport: want "sse", "ws" or a Transport, got ${JSON.stringify(tr)}`);
    const pubOver = o.publishOver ?? (tr === "ws" ? "ws" : "http");
    if (pubOver !== "http" && pubOver !== "ws") throw new UsageError(`publishOver: want "http" or "ws", got ${JSON.stringify(pubOver)}`);
    if (pubOver === "ws") this.#wsPub = new WSPublisher(ws);
    this.#token = o.token;
    this.#getToken = o.getToken;
    this.#requestTimeoutMs = o.requestTimeoutMs ?? 5000;
    this.#publishTimeoutMs = o.publishTimeoutMs ?? 30000;
    this.onRetry = o.onRetry;
  }

  /** The node URLs, as given (without a trailing slash). */
  get nodes(): readonly string[] {
    return this.ring.nodes;
  }

  /** @internal The token to send now. */
  get token(): string | undefined {
    return this.#token;
  }

  /** @internal Whether a getToken hook was given. */
  get canRefresh(): boolean {
    return this.#getToken !== undefined;
  }

  /** @internal Asks getToken for a new token; concurrent callers share one call. */
  async refreshToken(reason: TokenReason): Promise<string> {
    if (!this.#getToken) throw new UsageError("no getToken hook");
    if (!this.#refreshing) {
      const get = this.#getToken;
      this.#refreshing = (async () => {
        try {
          const t = await get(reason);
          if (typeof t !== "string" || t === "") throw new UsageError("getToken gave no token");
          this.#token = t;
          return t;
        } finally {
          this.#refreshing = undefined;
        }
      })();
    }
    return this.#refreshing;
  }

  /**
   * Follows a topic, or a list of topics and patterns ("quotes.*", "*"):
   * every published item of each after its position (default 0: from the
   * start), in order, each once, then the live ones; resets, deletions and
   * snapshots as events. See Subscription.
   */
  subscribe(topics: string | readonly string[], opts: SubscribeOptions = {}): Subscription {
    return new Subscription(this, topics, opts);
  }

  /** Closes the publishing WebSocket, if any (publish opens it again when called). Subscriptions end by their own close(). */
  close(): void {
    this.#wsPub?.close();
  }

  /**
   * Appends updates to topic as one atomic batch and returns a receipt
   * for each once they are durable. Every update gets a msg id before the
   * first attempt (crypto.randomUUID when it has none), and every retry
   * sends the same ids, so a retry whose first attempt did land is answered
   * as a duplicate with the original seq, never appended twice. It retries
   * network errors, 5xx, 409 and 429 (after Retry-After) across the nodes
   * until timeoutMs; any other error answer is thrown at once.
   */
  async publish(topic: string, updates: Update | Update[], opts: PublishOptions = {}): Promise<Receipt[]> {
    if (typeof topic !== "string" || topic === "") throw new UsageError("publish: a topic");
    const list = Array.isArray(updates) ? updates : [updates];
    if (list.length === 0) throw new UsageError("publish: no updates");
    if (opts.msgId !== undefined && list.length !== 1) throw new UsageError("publish: msgId is for a single update; give each update its own");
    const wire = list.map((u) => ({
      id: u.id, value: u.value === undefined ? null : u.value, msg_id: u.msgId ?? opts.msgId ?? newMsgId(), ...(u.deleted ? { deleted: true } : {}),
    }));
    const body = JSON.stringify(wire);
    const path = `/v1/topics/${encodeURIComponent(topic)}/items`;
    const deadline = Date.now() + (opts.timeoutMs ?? this.#publishTimeoutMs);
    let refreshed = false;
    for (let attempt = 0; ; attempt++) {
      // Over a WebSocket, publishing stays on the open socket's node.
      // Over HTTP, to the topic's lease holder once an answer named it.
      const node = this.#wsPub?.node ?? this.#pickFor(topic);
      let err: unknown;
      try {
        let items: WireReceipt[] | undefined;
        if (this.#wsPub) {
          items = await this.#wsPub.publish(node, this.#token, topic, wire, this.#requestTimeoutMs, opts.signal);
        } else {
          const { json, holder } = await this.#post(node, path, body, opts.signal);
          items = json?.items;
          this.#learnHolder(topic, node, holder);
        }
        if (!Array.isArray(items) || items.length !== wire.length) {
          throw new BatonError(200, { code: "bad_answer", message: `${items?.length} receipts for ${wire.length} updates` }, node);
        }
        return items.map((r) => ({
          seq: r.seq, hash: r.hash, msgId: r.msg_id, duplicate: r.duplicate === true,
        }));
      } catch (e) {
        err = e;
        this.#holders.delete(topic);
      }
      if (opts.signal?.aborted) throw opts.signal.reason;
      let wait = this.ring.delay(attempt);
      if (err instanceof BatonError) {
        if (err.status === 401 && this.#getToken && !refreshed) {
          refreshed = true;
          await this.refreshToken("refused");
          attempt--;
          continue;
        }
        if (!err.temporary) throw err;
        if (err.retryAfter !== undefined) wait = Math.max(wait, err.retryAfter * 1000);
      } else if (err instanceof NetworkError) {
        this.ring.markDown(node);
      } else {
        throw err;
      }
      if (Date.now() + wait >= deadline) throw err;
      this.onRetry?.({ op: "publish", node, error: err, attempt });
      await sleep(wait, opts.signal);
      if (opts.signal?.aborted) throw opts.signal.reason;
    }
  }

  /** The node to publish topic's updates to over HTTP: the holder an answer named, unless it is marked down, else the next in turn. */
  #pickFor(topic: string): string {
    const n = this.#holders.get(topic);
    return n !== undefined && !this.ring.isDown(n) ? n : this.ring.pick();
  }

  /**
   * Records the holder that node's answer named for topic (hint: the Baton-Holder header's host:port, "" for none):
   * the next publishes of topic go to the client's node at that address. A hint naming no node of the client's is
   * ignored; no hint from the remembered holder keeps it (it holds the lease), from another node forgets it.
   */
  #learnHolder(topic: string, node: string, hint: string): void {
    if (hint === "") {
      if (this.#holders.get(topic) !== node) this.#holders.delete(topic);
      return;
    }
    const to = this.ring.nodes.find((n) => new URL(n).host === hint);
    if (to === undefined) {
      this.#holders.delete(topic);
      return;
    }
    if (this.#holders.size >= maxHolders) this.#holders.clear();
    this.#holders.set(topic, to);
  }

  /** One POST with the request time limit; an error answer is a BatonError, no answer a NetworkError. */
  async #post(node: string, path: string, body: string, signal: AbortSignal | undefined): Promise<{ json: any; holder: string }> {
    const { ctl, release } = child(signal);
    let timedOut = false;
    const t = setTimeout(() => {
      timedOut = true;
      ctl.abort();
    }, this.#requestTimeoutMs);
    try {
      const url = new URL(node + path);
      const headers = new Headers({ "Content-Type": "application/json", Accept: "application/json" });
      authorize(this.#http, url, headers, this.#token);
      let resp: Response;
      let text: string;
      try {
        resp = await this.#http.fetch(url, { method: "POST", headers, body, signal: ctl.signal, credentials: this.#http.credentials });
        if (resp.status !== 201 && resp.status !== 200) throw await errorFrom(resp, node);
        text = await resp.text();
      } catch (e) {
        if (e instanceof BatonError) throw e;
        if (signal?.aborted) throw signal.reason;
        throw new NetworkError(node, timedOut ? `no answer in ${this.#requestTimeoutMs} ms` : String(e), { cause: e });
      }
      try {
        return { json: JSON.parse(text), holder: resp.headers.get("Baton-Holder") ?? "" };
      } catch (e) {
        throw new BatonError(resp.status, { code: "bad_answer", message: "an answer that is not JSON" }, node);
      }
    } finally {
      clearTimeout(t);
      release();
    }
  }
}

/** How many topics' holders a client remembers: past it, it forgets them all and learns again from the next answers. */
const maxHolders = 4096;

/** A new message id: a random UUID (crypto.randomUUID: browsers in secure contexts and Node 20+). */
export function newMsgId(): string {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  if (c && typeof c.getRandomValues === "function") {
    // Pages served over plain http (not a secure context) have getRandomValues but not randomUUID.
    const b = c.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
  throw new UsageError("no crypto.getRandomValues to make message ids: give each update a msgId");
}
