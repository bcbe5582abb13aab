// A streaming Server-Sent Events parser over the bytes of a fetch body
// (the WHATWG event-stream format, as the server writes it: docs/api.md,
// "The event stream"). fetch is used rather than EventSource so that the
// client sets Authorization, picks the node on every reconnect and keeps
// the resume position itself.

/** One dispatched event. `id` is undefined when the event set none. */
export interface SSEEvent {
  event: string;
  data: string;
  id: string | undefined;
}

/** A line or an event longer than this ends the stream with an error (the server's bodies are at most a few MiB). */
export const maxEventBytes = 16 << 20;

/**
 * Parses chunks of an event stream. `push` returns the events completed by
 * the chunk; state (a partial line, a partial event) is kept between calls.
 */
export class SSEParser {
  #decoder = new TextDecoder("utf-8");
  #line = "";
  #skipLF = false;
  #event = "";
  #data: string[] = [];
  #dataLen = 0;
  #id: string | undefined = undefined;

  push(chunk: Uint8Array): SSEEvent[] {
    return this.#text(this.#decoder.decode(chunk, { stream: true }));
  }

  /** Ends the input: an event without its blank line is dropped, as the format says. */
  end(): SSEEvent[] {
    this.#text(this.#decoder.decode());
    return [];
  }

  #text(s: string): SSEEvent[] {
    const out: SSEEvent[] = [];
    const n = s.length;
    let start = 0;
    if (this.#skipLF && n > 0) {
      // The LF of a CRLF whose CR ended the previous piece.
      this.#skipLF = false;
      if (s.charCodeAt(0) === 10) start = 1;
    }
    // The next LF and CR at or after start, found with indexOf (the
    // engine's fast search) and looked for again only once passed: -1
    // when there is none left.
    let lf = -2;
    let cr = -2;
    for (;;) {
      if (lf !== -1 && lf < start) lf = s.indexOf("\n", start);
      if (cr !== -1 && cr < start) cr = s.indexOf("\r", start);
      const i = lf === -1 ? cr : cr === -1 ? lf : Math.min(lf, cr);
      if (i === -1) break;
      this.#line += s.slice(start, i);
      start = i + 1;
      if (i === cr) {
        if (i + 1 < n) {
          if (s.charCodeAt(i + 1) === 10) start = i + 2;
        } else {
          this.#skipLF = true;
        }
      }
      const ev = this.#takeLine();
      if (ev) out.push(ev);
    }
    if (start < n) this.#line += s.slice(start);
    if (this.#line.length + this.#dataLen > maxEventBytes) {
      throw new Error(`event stream: an event over ${maxEventBytes} bytes`);
    }
    return out;
  }

  #takeLine(): SSEEvent | undefined {
    const line = this.#line;
    this.#line = "";
    if (line === "") {
      if (this.#data.length === 0 && this.#event === "") {
        return undefined;
      }
      const ev = { event: this.#event || "message", data: this.#data.join("\n"), id: this.#id };
      this.#event = "";
      this.#data = [];
      this.#dataLen = 0;
      this.#id = undefined;
      return ev;
    }
    if (line.charCodeAt(0) === 58) return undefined; // ":" a comment (the server's heartbeat)
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    switch (field) {
      case "event":
        this.#event = value;
        break;
      case "data":
        this.#data.push(value);
        this.#dataLen += value.length + 1;
        if (this.#dataLen > maxEventBytes) {
          throw new Error(`event stream: an event over ${maxEventBytes} bytes`);
        }
        break;
      case "id":
        if (!value.includes("\0")) this.#id = value;
        break;
      // "retry" is ignored: the client's own backoff decides.
    }
    return undefined;
  }
}
