package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/baton-pub/baton/wire"
)

// Snapshot reads one page of topic's snapshot, the latest item of each
// data id after afterID ("" for the first page), at most limit (0: the
// server's default), from the first node that answers. Pages are read at
// the seqs they name (docs/api.md, "Snapshots"): to follow a topic from
// its snapshot, Subscribe WithSnapshot.
func (c *Client) Snapshot(ctx context.Context, topic, afterID string, limit int) (wire.SnapshotResponse, error) {
	q := url.Values{}
	if afterID != "" {
		q.Set("after_id", afterID)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/v1/topics/" + url.PathEscape(topic) + "/snapshot"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out wire.SnapshotResponse
	err := c.first(ctx, "", func(base string) error {
		return c.do(ctx, http.MethodGet, base, path, nil, &out)
	})
	return out, err
}

// EventSnapshotStart is the Event a Subscribe WithSnapshot hands fn before
// each snapshot it receives: a stream broken before its snapshot_end is
// followed by a new snapshot, and what the broken one gave is to be
// dropped (an id it sent may have been deleted since).
const EventSnapshotStart = "snapshot_start"

// SubscribeOption changes what Subscribe asks for.
type SubscribeOption func(*subscribeOptions)

type subscribeOptions struct{ snapshot bool }

func subscribeOptionsOf(opts []SubscribeOption) subscribeOptions {
	var o subscribeOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// WithSnapshot starts the stream with the topic's snapshot (events?
// snapshot=1): fn gets EventSnapshotStart, a wire.EventSnapshot event per
// data id (Item; Item.Deleted: the id is removed; a later event of an id
// replaces an earlier), then wire.EventSnapshotEnd (Seq), then the items
// after Seq, resumed across nodes as any stream, with no gap and no
// duplicate.
func WithSnapshot() SubscribeOption {
	return func(o *subscribeOptions) { o.snapshot = true }
}

// snapshotEvent hands fn a snapshot or snapshot_end event of a stream
// from base; snapshot_end moves last to its seq and ends the snapshot.
func snapshotEvent(ev wire.Event, base string, last *uint64, snap *bool, fn func(Event) error) error {
	if !*snap {
		return stopError{fmt.Errorf("subscribe: %s sent a %s event outside a snapshot", base, ev.Type)}
	}
	if ev.Type == wire.EventSnapshot {
		it, err := ev.SnapshotItem()
		if err != nil {
			return stopError{fmt.Errorf("subscribe: bad snapshot item from %s: %w", base, err)}
		}
		if err := fn(Event{Type: wire.EventSnapshot, Item: it, Node: base}); err != nil {
			return stopError{err}
		}
		return nil
	}
	end, err := ev.SnapshotEnd()
	if err != nil {
		return stopError{fmt.Errorf("subscribe: bad snapshot_end from %s: %w", base, err)}
	}
	if err := fn(Event{Type: wire.EventSnapshotEnd, Seq: end.Seq, Node: base}); err != nil {
		return stopError{err}
	}
	*last, *snap = end.Seq, false
	return nil
}
