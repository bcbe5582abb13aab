// The event-stream transport: one named topic reads the one-topic stream
// GET /v1/topics/{topic}/events; anything else (many topics, patterns)
// the multi-topic stream GET /v1/events (docs/api.md). Both are read with
// fetch, not EventSource, so that the client sets headers, picks the node
// of every reconnect and keeps the positions itself.

import { NetworkError } from "./errors.js";
import { decodeEvent, parseData, type StreamEvent } from "./events.js";
import { SSEParser, type SSEEvent } from "./sse.js";
import { encodeStreamId, formatPositions } from "./streamid.js";
import { authorize, errorFrom, type HTTPSettings, type OpenRequest, type Transport } from "./transport.js";

/**
 * Event streams. Positions go in the URL (`?after=`, `?positions=`),
 * which keeps a read without a token a simple cross-origin request,
 * without a preflight; a multi-topic request that sends an Authorization
 * header (preflighted anyway) carries them in the shorter Last-Event-ID
 * of docs/api.md, "Resume encoding" (streamid.ts).
 */
export class SSETransport implements Transport {
  readonly name = "sse";
  #s: HTTPSettings;

  constructor(s: HTTPSettings) {
    this.#s = s;
  }

  async *open(req: OpenRequest): AsyncGenerator<StreamEvent> {
    const headers = new Headers({ Accept: "text/event-stream" });
    const one = req.topics.length === 1 && req.patterns.length === 0 ? req.topics[0] : undefined;
    let url: URL;
    if (one !== undefined) {
      url = new URL(`${req.node}/v1/topics/${encodeURIComponent(one)}/events`);
      // ?after with ?snapshot=1 is refused: the snapshot decides where the stream starts.
      if (req.snapshot.has(one)) url.searchParams.set("snapshot", "1");
      else url.searchParams.set("after", String(req.positions.get(one) ?? 0));
      authorize(this.#s, url, headers, req.token);
    } else {
      url = new URL(`${req.node}/v1/events`);
      for (const t of [...req.topics, ...req.patterns]) url.searchParams.append("topic", t);
      if (req.snapshot.size > 0 || req.snapshotFound) url.searchParams.set("snapshot", "1"); // for the topics at 0
      authorize(this.#s, url, headers, req.token);
      const moved = new Map([...req.positions].filter(([, p]) => p > 0));
      if (moved.size > 0) {
        if (headers.has("Authorization")) {
          const named = new Set(req.topics);
          headers.set("Last-Event-ID", encodeStreamId(req.topics, req.positions, [...moved.keys()].filter((t) => !named.has(t))));
        } else {
          url.searchParams.set("positions", formatPositions(moved));
        }
      }
    }
    for await (const ev of readEventStream(this.#s, url, headers, req.node, req.signal)) {
      // dropped (a topic a pattern found over the stream's limit is not followed) and unknown events are skipped.
      if (!known.has(ev.event)) continue;
      const se = decodeEvent(ev.event, parseData(ev.event, ev.data, req.node), one, req.node);
      if (!se) continue;
      yield se;
      if (se.type === "auth" || (one !== undefined && se.type === "deleted")) return;
    }
  }
}

const known = new Set(["item", "reset", "deleted", "snapshot", "snapshot_end", "auth"]);

/**
 * GETs url and yields the events of the stream it answers, until the
 * server ends it (return), signal aborts, or no byte arrives for idleMs (a
 * node that hangs keeps the socket open): a NetworkError. An error answer
 * is a BatonError.
 */
async function* readEventStream(s: HTTPSettings, url: URL, headers: Headers, node: string, signal: AbortSignal): AsyncGenerator<SSEEvent> {
  const conn = new AbortController();
  const onAbort = () => conn.abort();
  signal.addEventListener("abort", onAbort, { once: true });
  let idle: ReturnType<typeof setTimeout> | undefined;
  let stalled = false;
  const arm = () => {
    clearTimeout(idle);
    idle = setTimeout(() => {
      stalled = true;
      conn.abort();
    }, s.idleMs);
  };
  try {
    arm();
    let resp: Response;
    try {
      resp = await s.fetch(url, { headers, signal: conn.signal, credentials: s.credentials, cache: "no-store" });
    } catch (e) {
      throw new NetworkError(node, stalled ? "no answer" : `connect: ${String(e)}`, { cause: e });
    }
    if (resp.status !== 200) {
      clearTimeout(idle);
      throw await errorFrom(resp, node);
    }
    if (!resp.body) throw new NetworkError(node, "an event stream without a body");
    const reader = resp.body.getReader();
    const parser = new SSEParser();
    try {
      for (;;) {
        arm();
        let r: ReadableStreamReadResult<Uint8Array>;
        try {
          r = await reader.read();
        } catch (e) {
          throw new NetworkError(node, stalled ? "stream idle" : `read: ${String(e)}`, { cause: e });
        }
        // While the consumer handles what this read gave, the idle timer
        // must not run: a slow consumer is not a dead node.
        clearTimeout(idle);
        if (r.done) return;
        yield* parser.push(r.value);
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  } finally {
    clearTimeout(idle);
    signal.removeEventListener("abort", onAbort);
    conn.abort();
  }
}
