// Package filewatch reloads what a node read from files (token keys, TLS
// certificates) when the files change, by polling their modification
// times: simple, portable, and right for files an operator or a
// certificate manager replaces now and then.
package filewatch

import (
	"os"
	"sync"
	"time"
)

// Files is a set of files and the newest modification time seen when they
// were last read.
type Files struct {
	names []string
	mu    sync.Mutex
	seen  time.Time
}

// New watches the named files ("" is skipped).
func New(names ...string) *Files {
	var fs Files
	for _, n := range names {
		if n != "" {
			fs.names = append(fs.names, n)
		}
	}
	return &fs
}

func (f *Files) newest() time.Time {
	var t time.Time
	for _, n := range f.names {
		if fi, err := os.Stat(n); err == nil && fi.ModTime().After(t) {
			t = fi.ModTime()
		}
	}
	return t
}

// Mark records the files' times: call it just before reading them, so that
// a change made while they are read is seen as a change.
func (f *Files) Mark() {
	t := f.newest()
	f.mu.Lock()
	f.seen = t
	f.mu.Unlock()
}

// Changed reports whether a file is newer than at the last Mark.
func (f *Files) Changed() bool {
	t := f.newest()
	f.mu.Lock()
	defer f.mu.Unlock()
	return t.After(f.seen)
}

// Watch checks the files every interval until stop is closed and calls
// reload (which calls Mark) when one changed; a failed reload goes to
// onErr.
func (f *Files) Watch(interval time.Duration, stop <-chan struct{}, reload func() error, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if f.Changed() {
			if err := reload(); err != nil {
				onErr(err)
			}
		}
	}
}
