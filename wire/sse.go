package wire

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// MaxEventLine bounds one line of an event stream.
const MaxEventLine = 16 << 20

// ErrLineTooLong is returned for a line over MaxEventLine.
var ErrLineTooLong = errors.New("read event stream: line too long")

// Event is one Server-Sent Event as a client sees it. Its slices belong to
// the EventReader and are valid until the next call to Next (or until
// ReadEvents' callback returns): copy what must outlive it.
type Event struct {
	// Type is the event field; "message" if the event had none.
	Type string
	// Data is the event's data lines joined with "\n".
	Data []byte
	// ID is the last event ID as of this event. As in browsers it carries
	// over from earlier events when this one has no id field: it is the
	// position to resume from (Last-Event-ID).
	ID []byte
	// Retry is the latest reconnection delay the server asked for, 0 if
	// none.
	Retry time.Duration
}

// Clone returns a copy of e that owns its slices.
func (e Event) Clone() Event {
	e.Data, e.ID = bytes.Clone(e.Data), bytes.Clone(e.ID)
	return e
}

// Seq parses ID as a Baton seq.
func (e Event) Seq() (uint64, error) {
	n, err := strconv.ParseUint(string(e.ID), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse event id: %q is not a seq", e.ID)
	}
	return n, nil
}

// Item decodes the data of an "item" event.
func (e Event) Item() (Item, error) { return decodeData[Item](e, EventItem) }

// SnapshotItem decodes the data of a "snapshot" event.
func (e Event) SnapshotItem() (Item, error) { return decodeData[Item](e, EventSnapshot) }

// SnapshotEnd decodes the data of a "snapshot_end" event.
func (e Event) SnapshotEnd() (SnapshotEnd, error) {
	return decodeData[SnapshotEnd](e, EventSnapshotEnd)
}

// Reset decodes the data of a "reset" event.
func (e Event) Reset() (Reset, error) { return decodeData[Reset](e, EventReset) }

// Auth decodes the data of an "auth" event.
func (e Event) Auth() (Auth, error) { return decodeData[Auth](e, EventAuth) }

func decodeData[T any](e Event, typ string) (T, error) {
	var d T
	if e.Type != typ {
		return d, fmt.Errorf("decode %s: %q event is not one", typ, e.Type)
	}
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return d, fmt.Errorf("decode %s: %w", typ, err)
	}
	return d, nil
}

// EventReader parses an event stream (the text/event-stream format of the
// HTML standard). It handles LF, CRLF and CR line ends, a leading BOM,
// comments, multi-line data, and the id, event and retry fields; it
// ignores unknown fields and, as the standard says, events with no data
// and an event cut off by the end of the stream. In the steady state it
// allocates nothing per event.
type EventReader struct {
	br      *bufio.Reader
	line    []byte // a line that spanned refills of br
	skipLF  bool   // the previous line ended with CR: drop a leading LF
	started bool   // past the BOM, if any

	typ   []byte
	data  []byte
	id    []byte
	retry time.Duration
}

// NewEventReader reads events from r through a buffer of size bytes
// (64 KiB if size <= 0). Lines longer than the buffer are read too, up to
// MaxEventLine.
func NewEventReader(r io.Reader, size int) *EventReader {
	if size <= 0 {
		size = 64 << 10
	}
	return &EventReader{br: bufio.NewReaderSize(r, size)}
}

// Next returns the next event. At the end of the stream it returns io.EOF;
// otherwise its error is the reader's or ErrLineTooLong.
func (r *EventReader) Next() (Event, error) {
	hasData := false
	r.typ, r.data = r.typ[:0], r.data[:0]
	for {
		line, err := r.nextLine()
		if err != nil {
			return Event{}, err
		}
		if !r.started {
			line = bytes.TrimPrefix(line, []byte("\ufeff"))
			r.started = true
		}
		if len(line) == 0 {
			if !hasData {
				r.typ = r.typ[:0]
				continue
			}
			return Event{Type: eventType(r.typ), Data: r.data, ID: r.id, Retry: r.retry}, nil
		}
		if line[0] == ':' {
			continue // comment
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "event":
			r.typ = append(r.typ[:0], value...)
		case "data":
			if hasData {
				r.data = append(r.data, '\n')
			}
			r.data = append(r.data, value...)
			hasData = true
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				r.id = append(r.id[:0], value...)
			}
		case "retry":
			// A delay too long for a time.Duration is ignored.
			if ms, err := strconv.ParseUint(string(value), 10, 63); err == nil && isDigits(value) && ms <= math.MaxInt64/uint64(time.Millisecond) {
				r.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
}

// eventType names an event's type, without allocating for Baton's.
func eventType(b []byte) string {
	switch string(b) {
	case "":
		return "message"
	case EventItem:
		return EventItem
	case EventReset:
		return EventReset
	}
	return string(b)
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// nextLine returns the next line without its end (LF, CRLF or CR), valid
// until the next call. It never waits for the byte after a CR before
// returning the line. A line cut off by the end of the stream is dropped
// (io.EOF).
func (r *EventReader) nextLine() ([]byte, error) {
	r.line = r.line[:0]
	for {
		if r.br.Buffered() == 0 {
			if _, err := r.br.Peek(1); err != nil {
				return nil, err
			}
		}
		buf, _ := r.br.Peek(r.br.Buffered())
		if r.skipLF {
			r.skipLF = false
			if buf[0] == '\n' {
				_, _ = r.br.Discard(1)
				continue
			}
		}
		if i := lineEnd(buf); i >= 0 {
			if len(r.line)+i > MaxEventLine {
				return nil, ErrLineTooLong
			}
			r.skipLF = buf[i] == '\r'
			var line []byte
			if len(r.line) == 0 {
				// The whole line is in the buffer: no copy. Discard
				// does not refill, so it stays valid until the next
				// call.
				line = buf[:i]
			} else {
				r.line = append(r.line, buf[:i]...)
				line = r.line
			}
			_, _ = r.br.Discard(i + 1)
			return line, nil
		}
		if len(r.line)+len(buf) > MaxEventLine {
			return nil, ErrLineTooLong
		}
		r.line = append(r.line, buf...)
		_, _ = r.br.Discard(len(buf))
	}
}

// lineEnd is the index of the first CR or LF in b, or -1: bytes.IndexAny
// without its byte-by-byte loop (two IndexByte calls, which use vector
// instructions, read a line a few times faster).
func lineEnd(b []byte) int {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return bytes.IndexByte(b, '\r')
	}
	if j := bytes.IndexByte(b[:i], '\r'); j >= 0 {
		return j
	}
	return i
}

// ReadEvents calls fn for each event of the stream r, in order. It returns
// nil at the end of the stream, fn's error if fn fails, and the reader's
// error otherwise. The caller resumes from the last event's ID.
func ReadEvents(r io.Reader, fn func(Event) error) error {
	er := NewEventReader(r, 0)
	for {
		ev, err := er.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
}
