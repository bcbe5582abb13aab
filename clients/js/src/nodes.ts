// The node list: which node to try next (in the order given, from the
// first: shuffle the list to spread many clients over the nodes), and how long to wait when every
// node failed in turn. The same rules as the Go client (client/client.go,
// pick and pause): round robin, skipping for a while a node that did not
// answer at all, and jittered exponential backoff only after a whole round
// failed, so a dead node costs one attempt, not a wait.

/** Backoff settings, in milliseconds. */
export interface Backoff {
  /** The first wait after a round of failures (default 100). */
  initialMs: number;
  /** The longest wait, and how long a silent node is skipped (default 5000). */
  maxMs: number;
}

export class NodeRing {
  readonly nodes: readonly string[];
  readonly backoff: Backoff;
  #next: number;
  #down = new Map<string, number>();

  constructor(nodes: readonly string[], backoff: Backoff) {
    this.nodes = nodes;
    this.backoff = backoff;
    this.#next = 0;
  }

  /** The next node in turn, skipping nodes marked down unless all are. */
  pick(): string {
    const now = Date.now();
    for (let i = 0; i < this.nodes.length; i++) {
      const n = this.nodes[this.#advance()];
      const until = this.#down.get(n);
      if (until === undefined || now >= until) {
        this.#down.delete(n);
        return n;
      }
    }
    return this.nodes[this.#advance()];
  }

  #advance(): number {
    const i = this.#next % this.nodes.length;
    this.#next = (i + 1) % this.nodes.length;
    return i;
  }

  /** Whether node is marked down now. */
  isDown(node: string): boolean {
    const until = this.#down.get(node);
    return until !== undefined && Date.now() < until;
  }

  /** Skips node for a while after it gave no answer at all. */
  markDown(node: string): void {
    this.#down.set(node, Date.now() + this.backoff.maxMs);
  }

  /**
   * How long to wait before attempt+1: nothing while other nodes remain
   * in this round, then min(initial * 2^round, max), jittered to half to
   * all of it so that clients cut off together do not come back together.
   */
  delay(attempt: number): number {
    if ((attempt + 1) % this.nodes.length !== 0) return 0;
    const round = Math.floor(attempt / this.nodes.length);
    const d = Math.min(this.backoff.initialMs * 2 ** Math.min(round, 20), this.backoff.maxMs);
    return d / 2 + Math.random() * (d / 2);
  }
}

/** Waits ms, or less if signal aborts (the caller checks signal.aborted). */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal?.aborted) {
      resolve();
      return;
    }
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** An AbortController aborted when parent aborts (AbortSignal.any is not in every browser a client may meet). */
export function child(parent: AbortSignal | undefined): { ctl: AbortController; release: () => void } {
  const ctl = new AbortController();
  if (!parent) return { ctl, release: () => {} };
  if (parent.aborted) {
    ctl.abort(parent.reason);
    return { ctl, release: () => {} };
  }
  const on = () => ctl.abort(parent.reason);
  parent.addEventListener("abort", on, { once: true });
  return { ctl, release: () => parent.removeEventListener("abort", on) };
}
