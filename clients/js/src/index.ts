// @baton-pub/client: subscribe to Baton topics with resume across nodes,
// and publish with idempotent retries. Browsers and Node 20+; no runtime
// dependencies. Guide: clients/js/README.md.

export { Baton, newMsgId } from "./client.js";
export type { BatonOptions, PublishOptions, RetryInfo, TokenReason } from "./client.js";
export { Subscription } from "./subscription.js";
export type { SubscribeOptions } from "./subscription.js";
export { BatonError, GapError, NetworkError, ProtocolError, UsageError } from "./errors.js";
export type { ErrorBody } from "./errors.js";
export { SSEParser } from "./sse.js";
export type { SSEEvent } from "./sse.js";
export { SSETransport } from "./ssetransport.js";
export { WSTransport } from "./ws.js";
export type { WebSocketCtor, WSSettings } from "./wsconn.js";
export type { HTTPSettings, OpenRequest, StreamEvent, Transport } from "./transport.js";
export { encodeStreamId, formatPositions, parseStreamId } from "./streamid.js";
export type { StreamPositions } from "./streamid.js";
export { matchPattern, maxStreamPatterns, maxStreamTopics, validTopic } from "./selection.js";
export type { Item, Receipt, SubscriptionEvent, Update } from "./types.js";
export type { Backoff } from "./nodes.js";
