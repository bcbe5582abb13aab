// Errors the client throws. A caller branches on the class and, for
// BatonError, on `code` (docs/api.md, "Errors"), never on `message`.

/** The JSON error body every Baton route answers with (docs/api.md, "Errors"). */
export interface ErrorBody {
  code: string;
  message: string;
  field?: string;
  earliest?: number;
  request_id?: string;
}

/** An error answer from a node: the HTTP status and the server's error body. */
export class BatonError extends Error {
  override name = "BatonError";
  /** HTTP status of the answer (400, 401, 429, 503, ...). */
  readonly status: number;
  /** The server's code: invalid, unauthorized, forbidden, not_found, gone, too_large, rate_limited, unavailable, ... */
  readonly code: string;
  /** The bad input, when the server names it: `topic`, `items[3].id`, ... */
  readonly field: string | undefined;
  /** With `gone`: the earliest seq still kept. */
  readonly earliest: number | undefined;
  /** The node's request id (quote it when reporting an error). */
  readonly requestId: string | undefined;
  /** The node that answered. */
  readonly node: string;
  /** Seconds to wait before a retry (the Retry-After header of a 429 or 503), when given. */
  readonly retryAfter: number | undefined;
  /** The error body as received. */
  readonly body: ErrorBody;

  constructor(status: number, body: ErrorBody, node: string, retryAfter?: number) {
    super(`${status} ${body.code}: ${body.message}${body.field ? ` (field ${body.field})` : ""}`);
    this.status = status;
    this.code = body.code;
    this.field = body.field;
    this.earliest = body.earliest;
    this.requestId = body.request_id;
    this.node = node;
    this.retryAfter = retryAfter;
    this.body = body;
  }

  /**
   * Whether the same request may succeed later or on another node: 5xx
   * (store unavailable, node shutting down), 429 (rate limited), 409
   * (the lock changed under the request).
   */
  get temporary(): boolean {
    return this.status >= 500 || this.status === 429 || this.status === 409;
  }
}

/** The HTTP status of each error code (http/error.go, statusOf): a WebSocket error frame carries the code only. */
const statusOfCode: Record<string, number> = {
  invalid: 400, unauthorized: 401, forbidden: 403, rate_limited: 429, unsupported_media_type: 415, too_many: 429, not_found: 404,
  method_not_allowed: 405, conflict: 409, gone: 410, too_large: 413, unavailable: 503, internal: 500,
};

/** The BatonError of a WebSocket error frame's body (an unknown code is a 500, as on the server). */
export function frameError(body: ErrorBody, node: string): BatonError {
  return new BatonError(statusOfCode[body.code] ?? 500, body, node);
}

/** No answer from a node: connection refused or reset, DNS, a timeout, a stream cut. */
export class NetworkError extends Error {
  override name = "NetworkError";
  readonly node: string;
  constructor(node: string, message: string, options?: { cause?: unknown }) {
    super(`${node}: ${message}`, options);
    this.node = node;
  }
}

/**
 * A node sent an item that does not follow the last one delivered without a
 * reset: a broken server guarantee. The subscription ends with it.
 */
export class GapError extends Error {
  override name = "GapError";
  readonly topic: string;
  readonly after: number;
  readonly seq: number;
  constructor(topic: string, after: number, seq: number, node: string) {
    super(`gap in topic ${topic}: seq ${seq} after ${after} from ${node}`);
    this.topic = topic;
    this.after = after;
    this.seq = seq;
  }
}

/** Bad arguments given to the client itself (no request was sent). */
export class UsageError extends Error {
  override name = "UsageError";
}

/** A node sent something this client cannot read (a malformed event): the subscription ends with it. */
export class ProtocolError extends Error {
  override name = "ProtocolError";
  readonly node: string;
  constructor(node: string, message: string, options?: { cause?: unknown }) {
    super(`${node}: ${message}`, options);
    this.node = node;
  }
}
