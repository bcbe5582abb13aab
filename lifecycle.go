package baton

import (
	"context"
	"time"
)

// Lifecycle deletes topics and keeps each topic's retention (docs/design.md,
// "Topic lifecycle").
//
// Contract:
//   - DeleteTopic removes, in one atomic step, the topic's queue (published
//     or not), its msg id and hash indexes, its lock lease and its
//     retention. A live lease of the topic ends with a release record of
//     reason ReasonDeleted (a lapsed one with its expired record): the
//     holder's next fenced write (commit, checkpoint) returns ErrFenced.
//     The lock's epoch counter survives the delete, so a fencing epoch of
//     the topic is never handed out twice.
//   - With opts.Ledger false the ledger (leaves, checkpoints), the release
//     records (who held each epoch of its leaves: its provenance) and the
//     cursor, the ledger's head, are kept: the topic's log is append-only
//     for ever, and a topic of the same name appended to later continues it
//     at seq cursor+1. Reads at or below the old cursor return ErrTrimmed.
//     With opts.Ledger true they go too, and a later topic starts at seq 1.
//   - A deleted topic is not listed by Topics, Topic returns ErrNotFound,
//     Acquire returns ErrNotFound (a racing elector does not bring it back)
//     until an Append creates it again (SignalTopic, as a new topic).
//   - Deleting a topic that does not exist (never created, or deleted and
//     not appended to since) returns ErrNotFound.
//   - DeleteTopic signals SignalTopic, SignalLock, SignalAppend and
//     SignalCommit on the topic, and SignalTopic to subscribers of "".
//   - SetRetention replaces the topic's retention; Retention reads it (the
//     zero Retention, "the node's defaults", if none was set). Both return
//     ErrNotFound for a topic that does not exist. SetRetention signals
//     SignalLock on the topic.
type Lifecycle interface {
	DeleteTopic(ctx context.Context, topic string, opts DeleteOptions) (Deletion, error)
	SetRetention(ctx context.Context, topic string, r Retention) error
	Retention(ctx context.Context, topic string) (Retention, error)
}

// DeleteOptions say what a topic's deletion takes with it.
type DeleteOptions struct {
	// Ledger deletes the ledger and its checkpoints too. Keeping them is
	// the default: they are the audit trail of what was published, which
	// must not go by accident (docs/design.md, "Topic lifecycle").
	Ledger bool
}

// Deletion reports what a DeleteTopic removed.
type Deletion struct {
	Topic string `json:"topic"`
	// Items is how many items left the queue, published or not.
	Items int `json:"items"`
	// Unpublished is how many of them had not been published.
	Unpublished int `json:"unpublished"`
	// Epoch is the lock's latest epoch: a lease of it, if live, ended.
	Epoch uint64 `json:"epoch"`
	// LedgerSize is the size of the ledger kept (the seq a new topic of
	// that name continues after), 0 if the ledger was deleted.
	LedgerSize uint64 `json:"ledger_size"`
	// LedgerDeleted says whether the ledger went too.
	LedgerDeleted bool `json:"ledger_deleted"`
}

// Retention is how long a topic keeps its published items: the items
// kept are the last Items published and those published within Age,
// whichever limit is reached first trims. A zero field means the node's
// default (baton serve --retain, --retain-age); Unlimited means no limit
// of that kind for this topic. Unpublished items are never trimmed.
type Retention struct {
	Items int64         // 0: the default; Unlimited: no count limit
	Age   time.Duration // 0: the default; Unlimited: no age limit
}

// Unlimited in a Retention field lifts that limit for the topic.
const Unlimited = -1

// Retention bounds (ValidateRetention).
const (
	MaxRetainItems = 1 << 40
	MinRetainAge   = time.Second
	MaxRetainAge   = 100 * 365 * 24 * time.Hour
)

// Effective is r with its defaults filled in from the node's: items and
// age, where 0 means no limit.
func (r Retention) Effective(items uint64, age time.Duration) (uint64, time.Duration) {
	switch {
	case r.Items == Unlimited:
		items = 0
	case r.Items > 0:
		items = uint64(r.Items)
	}
	switch {
	case r.Age == Unlimited:
		age = 0
	case r.Age > 0:
		age = r.Age
	}
	return items, age
}

// ParseAge reads a retention age as the HTTP API and the CLI take it: a Go
// duration ("24h", "90m"), "" or "0" for the default, "none" for no limit.
// It does not check the bounds: ValidateRetention does.
func ParseAge(s string) (time.Duration, error) {
	switch s {
	case "", "0":
		return 0, nil
	case "none":
		return Unlimited, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, Invalidf("age", "%q is not a positive duration (e.g. \"24h\"), \"none\" or \"0\"", s)
	}
	return d, nil
}

// FormatAge writes an age as ParseAge reads it.
func FormatAge(d time.Duration) string {
	switch d {
	case 0:
		return ""
	case Unlimited:
		return "none"
	}
	return d.String()
}
