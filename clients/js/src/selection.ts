// What a subscription follows: named topics and patterns (docs/api.md,
// "Many topics on one stream"), with the server's matching
// (auth.Pattern.Match) and limits. Names are checked by the node, which
// answers a bad one with 400 invalid (a rule of the server's, kept in one
// place); here only what the client must tell apart: a pattern from a name.

import { UsageError } from "./errors.js";

/** The most topics one stream or socket follows (wire.MaxStreamTopics). */
export const maxStreamTopics = 1000;
/** The most patterns one stream or socket takes (wire.MaxStreamPatterns). */
export const maxStreamPatterns = 16;
/** A topic name's longest length (baton.MaxTopicLen). */
const maxTopicLen = 128;

/** Whether s is a topic name: A-Z a-z 0-9 . _ -, starting with a letter or digit, at most 128 characters. */
export function validTopic(s: string): boolean {
  return typeof s === "string" && s.length <= maxTopicLen && /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(s);
}

/** Whether pattern ("*" or "NAME.*") selects topic. */
export function matchPattern(pattern: string, topic: string): boolean {
  if (pattern === "*") return true;
  const prefix = pattern.slice(0, -1);
  return topic.length > prefix.length && topic.startsWith(prefix);
}

/** Named topics (sorted, each once) and patterns, checked. */
export class Selection {
  readonly topics: readonly string[];
  readonly patterns: readonly string[];
  #named: ReadonlySet<string>;

  constructor(values: readonly string[]) {
    if (!Array.isArray(values) || values.length === 0) throw new UsageError("subscribe: at least one topic or pattern");
    const named = new Set<string>();
    const patterns: string[] = [];
    for (const v of values) {
      if (typeof v === "string" && v.includes("*")) {
        if (v !== "*" && (!v.endsWith(".*") || v.indexOf("*") !== v.length - 1)) {
          throw new UsageError(`subscribe: topic pattern ${JSON.stringify(v)}: want * or NAME.*`);
        }
        if (!patterns.includes(v)) patterns.push(v);
        continue;
      }
      if (typeof v !== "string" || v === "") throw new UsageError("subscribe: a topic is a non-empty string");
      named.add(v);
    }
    if (named.size > maxStreamTopics || patterns.length > maxStreamPatterns) {
      throw new UsageError(`subscribe: at most ${maxStreamTopics} topics and ${maxStreamPatterns} patterns`);
    }
    // Byte order, as the server sorts (topic names are ASCII).
    this.topics = [...named].sort();
    this.patterns = patterns;
    this.#named = named;
  }

  isNamed(topic: string): boolean {
    return this.#named.has(topic);
  }

  /** Whether topic is named or selected by a pattern. */
  has(topic: string): boolean {
    return this.#named.has(topic) || this.patterns.some((p) => matchPattern(p, topic));
  }
}
