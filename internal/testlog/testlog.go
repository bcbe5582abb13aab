// Package testlog gives tests a logger whose records are kept in memory
// and printed only if the test fails: a failure shows what the components
// under test said, a pass stays quiet.
package testlog

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
)

// maxBytes bounds the kept log; older records are dropped first.
const maxBytes = 4 << 20

// New returns a debug-level logger for t. Its records are printed with
// t.Log when t has failed by the time its cleanup runs.
func New(t testing.TB) *slog.Logger {
	t.Helper()
	b := &Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of the components under test (last %d bytes):\n%s", b.Len(), b.String())
		}
	})
	return b.Logger()
}

// Buffer keeps log text for a test to read; safe for concurrent use and
// bounded (the oldest records go first).
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Logger returns a debug-level text logger writing to b.
func (b *Buffer) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len()+len(p) > maxBytes {
		// Keep the newer half.
		rest := b.buf.Bytes()[b.buf.Len()/2:]
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			rest = rest[i+1:]
		}
		kept := append([]byte(nil), rest...)
		b.buf.Reset()
		b.buf.Write(kept)
	}
	return b.buf.Write(p)
}

// String is the text kept.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Len is the number of bytes kept.
func (b *Buffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}
