package baton

import "context"

// Service is the lifecycle of every long-lived component of a node:
// hub.Hub, node.Node, elector.Elector and ledger.Witness. (The HTTP API,
// which serves a listener, has the same shape as Open(ln) and Close.)
//
//   - The constructor (New...) checks the configuration and starts nothing.
//   - Start returns once the component runs; it never blocks on the
//     component's work. It may do bounded start-up I/O under ctx (the node
//     registers its membership first) and fails if that fails. Only Start
//     heeds ctx's cancellation: the goroutines it starts run until Close,
//     whatever becomes of ctx, so that the caller orders the shutdown (the
//     node hands its leases over before the hub and the API stop; see
//     cmd/baton/serve.go). A second Start fails; Start after Close fails
//     with ErrClosed.
//   - Close stops the component: it cancels its goroutines, waits for every
//     one of them, then releases what the component holds. It is
//     idempotent, safe to call from several goroutines, and safe without
//     Start; every call returns once the component has stopped.
type Service interface {
	Start(ctx context.Context) error
	Close() error
}
