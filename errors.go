package baton

import (
	"errors"
	"fmt"
)

// Sentinel errors that callers branch on. Engines wrap them with detail.
var (
	// ErrLeaseHeld: the lock is held by a live lease of another node.
	ErrLeaseHeld = errors.New("lease held by another node")
	// ErrLeaseLost: the caller's lease has expired, been released, or been
	// taken over (a newer epoch exists). The caller must stop publishing.
	ErrLeaseLost = errors.New("lease not held")
	// ErrFenced is returned by a commit made under a stale epoch. It wraps
	// ErrLeaseLost so that callers may check either.
	ErrFenced = fmt.Errorf("stale fencing epoch: %w", ErrLeaseLost)
	// ErrCursorMoved: a commit's PrevSeq does not match the stored cursor.
	ErrCursorMoved = errors.New("cursor moved")
	// ErrNotFound: no such item, hash, topic or record.
	ErrNotFound = errors.New("not found")
	// ErrTrimmed: the asked position is no longer kept in the queue.
	ErrTrimmed = errors.New("position no longer kept")
	// ErrInvalid: bad input (topic name, update, argument).
	ErrInvalid = errors.New("invalid input")
	// ErrUnavailable: the store cannot be reached.
	ErrUnavailable = errors.New("store unavailable")
	// ErrClosed: the component was closed.
	ErrClosed = errors.New("closed")
)

// Error codes, used in HTTP error bodies and CLI messages.
const (
	CodeInvalid      = "invalid"
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeTooLarge     = "too_large"
	CodeMethod       = "method_not_allowed"
	CodeUnavailable  = "unavailable"
	CodeInternal     = "internal"
	CodeGone         = "gone"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeRateLimited  = "rate_limited"
	CodeMediaType    = "unsupported_media_type"
	CodeTooMany      = "too_many"
)

// InvalidError is bad input, naming the field at fault.
type InvalidError struct {
	Field  string
	Reason string
}

func (e *InvalidError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Unwrap() error { return ErrInvalid }

// Invalidf returns an *InvalidError for field.
func Invalidf(field, format string, args ...any) error {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// ErrorCode maps an error to one of the Code* constants.
func ErrorCode(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrInvalid):
		return CodeInvalid
	case errors.Is(err, ErrNotFound):
		return CodeNotFound
	case errors.Is(err, ErrTrimmed):
		return CodeGone
	case errors.Is(err, ErrLeaseHeld), errors.Is(err, ErrLeaseLost), errors.Is(err, ErrCursorMoved):
		return CodeConflict
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrClosed):
		return CodeUnavailable
	default:
		return CodeInternal
	}
}
