// Transports: how a subscription reads events from one node over one
// connection. The subscription (subscription.ts) owns everything that
// spans connections: the node order, backoff, the position per topic,
// duplicates, resets, snapshots and token refresh; a transport only opens
// one connection and turns what arrives into StreamEvents (events.ts).
// The built-in ones: event streams (ssetransport.ts) and the WebSocket
// (ws.ts); clients/js/README.md, "Transports".

import { BatonError } from "./errors.js";
import type { StreamEvent } from "./events.js";

export type { StreamEvent } from "./events.js";

/** One connection to open. */
export interface OpenRequest {
  /** The node's base URL, e.g. http://127.0.0.1:8080. */
  node: string;
  /** The named topics to follow, sorted, each once. */
  topics: readonly string[];
  /** The patterns to follow ("quotes.*", "*"): every topic they select, now and later. */
  patterns: readonly string[];
  /**
   * Where each topic starts: the last seq delivered to the application (0:
   * from the start), for every named topic and for the topics a pattern
   * found on earlier connections.
   */
  positions: ReadonlyMap<string, number>;
  /** The named topics to start with their snapshot (each at position 0). */
  snapshot: ReadonlySet<string>;
  /** Whether the topics the patterns select when the connection begins, at position 0, start with their snapshot too. */
  snapshotFound: boolean;
  /** The token to send, if any. */
  token: string | undefined;
  /** Aborted when the subscription ends or gives up on this connection. */
  signal: AbortSignal;
}

/**
 * Opens connections. `open` yields the connection's events in order and
 * returns when the server ends the connection; it throws BatonError for an
 * error answer, NetworkError for a failed or stalled connection and
 * ProtocolError for something unreadable. It may
 * deliver items at or before a position (they are dropped) but must never
 * skip one without a reset.
 */
export interface Transport {
  /** Names the transport in logs and errors: "sse", "ws". */
  readonly name: string;
  open(req: OpenRequest): AsyncIterable<StreamEvent>;
}

/** What the built-in transports need from the client. */
export interface HTTPSettings {
  fetch: typeof fetch;
  /** Where the token goes: the Authorization header, or the access_token query parameter. */
  tokenIn: "header" | "query";
  /** fetch's credentials mode (browsers: "include" sends the baton_token cookie). */
  credentials: RequestCredentials | undefined;
  /** A connection that delivers no byte for this long (the server sends a heartbeat every 5 s) is abandoned. */
  idleMs: number;
}

/** Sends the token as the settings say. */
export function authorize(s: HTTPSettings, url: URL, headers: Headers, token: string | undefined): void {
  if (!token) return;
  if (s.tokenIn === "query") url.searchParams.set("access_token", token);
  else headers.set("Authorization", `Bearer ${token}`);
}

/** Reads an error answer into a BatonError (a body that is not Baton's JSON keeps its text as the message). */
export async function errorFrom(resp: Response, node: string): Promise<BatonError> {
  let text = "";
  try {
    text = await resp.text();
  } catch {
    // the body is lost; the status still says what happened
  }
  let body: { code: string; message: string } | undefined;
  try {
    const env = JSON.parse(text);
    if (env && typeof env.error === "object" && env.error && typeof env.error.code === "string") body = env.error;
  } catch {
    // not JSON: a proxy's page
  }
  const ra = resp.headers.get("Retry-After");
  const retryAfter = ra !== null && /^\d+$/.test(ra.trim()) ? Number(ra.trim()) : undefined;
  return new BatonError(resp.status, body ?? { code: `http_${resp.status}`, message: text.slice(0, 200).trim() || resp.statusText }, node, retryAfter);
}
