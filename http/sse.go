package http

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/baton-pub/baton/hub"
)

// MaxEventLine bounds one line of an event stream read by ReadEvents.
const MaxEventLine = 16 << 20

// ErrLineTooLong is returned by ReadEvents for a line over MaxEventLine.
var ErrLineTooLong = errors.New("sse: line too long")

// ItemData and ResetData are the data of "item" and "reset" events.
type (
	ItemData  = hub.ItemData
	ResetData = hub.ResetData
)

// Event is one Server-Sent Event as a client sees it.
type Event struct {
	// Type is the event field; "message" if the event had none.
	Type string
	// Data is the event's data lines joined with "\n".
	Data string
	// ID is the last event ID as of this event. As in browsers it carries
	// over from earlier events when this one has no id field: it is the
	// position to resume from (Last-Event-ID).
	ID string
	// Retry is the latest reconnection delay the server asked for, 0 if
	// none.
	Retry time.Duration
}

// Seq parses ID as a Baton seq.
func (e Event) Seq() (uint64, error) {
	n, err := strconv.ParseUint(e.ID, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("sse: event id %q is not a seq", e.ID)
	}
	return n, nil
}

// Item decodes the data of an "item" event.
func (e Event) Item() (ItemData, error) {
	var d ItemData
	if e.Type != hub.EventNameItem {
		return d, fmt.Errorf("sse: %q event is not an item", e.Type)
	}
	if err := json.Unmarshal([]byte(e.Data), &d); err != nil {
		return d, fmt.Errorf("sse: decode item: %w", err)
	}
	return d, nil
}

// Reset decodes the data of a "reset" event.
func (e Event) Reset() (ResetData, error) {
	var d ResetData
	if e.Type != hub.EventNameReset {
		return d, fmt.Errorf("sse: %q event is not a reset", e.Type)
	}
	if err := json.Unmarshal([]byte(e.Data), &d); err != nil {
		return d, fmt.Errorf("sse: decode reset: %w", err)
	}
	return d, nil
}

// ReadEvents parses an event stream (the text/event-stream format of the
// HTML standard) and calls fn for each event, in order. It handles LF, CRLF
// and CR line ends, a leading BOM, comments, multi-line data, and the id,
// event and retry fields; it ignores unknown fields and, as the standard
// says, events with no data and an event cut off by the end of the stream.
//
// It returns nil at the end of the stream, fn's error if fn fails, and the
// reader's error otherwise. The caller resumes from the last event's ID.
func ReadEvents(r io.Reader, fn func(Event) error) error {
	lr := lineReader{br: bufio.NewReaderSize(r, 64<<10)}
	var (
		typ     string
		data    []byte
		hasData bool
		lastID  string
		retry   time.Duration
		first   = true
	)
	for {
		line, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if first {
			line = bytes.TrimPrefix(line, []byte("\ufeff"))
			first = false
		}
		if len(line) == 0 {
			// Dispatch.
			if hasData {
				ev := Event{Type: typ, Data: string(data), ID: lastID, Retry: retry}
				if ev.Type == "" {
					ev.Type = "message"
				}
				if err := fn(ev); err != nil {
					return err
				}
			}
			typ, data, hasData = "", data[:0], false
			continue
		}
		if line[0] == ':' {
			continue // comment
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			value = bytes.TrimPrefix(value, []byte(" "))
		}
		switch string(field) {
		case "event":
			typ = string(value)
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data = append(data, value...)
			hasData = true
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				lastID = string(value)
			}
		case "retry":
			if ms, err := strconv.ParseUint(string(value), 10, 63); err == nil && isDigits(value) {
				retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// lineReader splits a stream into lines ended by LF, CRLF or CR. It never
// waits for the byte after a CR before returning the line.
type lineReader struct {
	br     *bufio.Reader
	line   []byte
	skipLF bool // the previous line ended with CR: drop a leading LF
}

// next returns the next line without its end. The slice is valid until the
// next call. A line cut off by the end of the stream is dropped (io.EOF).
func (l *lineReader) next() ([]byte, error) {
	l.line = l.line[:0]
	for {
		if l.br.Buffered() == 0 {
			if _, err := l.br.Peek(1); err != nil {
				return nil, err
			}
		}
		buf, _ := l.br.Peek(l.br.Buffered())
		if l.skipLF {
			l.skipLF = false
			if buf[0] == '\n' {
				_, _ = l.br.Discard(1)
				continue
			}
		}
		if i := bytes.IndexAny(buf, "\r\n"); i >= 0 {
			if len(l.line)+i > MaxEventLine {
				return nil, ErrLineTooLong
			}
			l.line = append(l.line, buf[:i]...)
			l.skipLF = buf[i] == '\r'
			_, _ = l.br.Discard(i + 1)
			return l.line, nil
		}
		if len(l.line)+len(buf) > MaxEventLine {
			return nil, ErrLineTooLong
		}
		l.line = append(l.line, buf...)
		_, _ = l.br.Discard(len(buf))
	}
}
