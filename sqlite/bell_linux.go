package sqlite

import (
	"errors"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// bell is the PATH-bell file: ring writes its byte, and the inotify watch
// on it hears every process's rings (this one's too).
type bell struct {
	file   *os.File // written by ring
	notify *os.File // the inotify descriptor, non-blocking: closing it ends a read
	rung   chan struct{}

	mu   sync.Mutex
	gen  uint64        // wake-ups heard (rings, merged as inotify merges them)
	next chan struct{} // closed at the next one (turn.go)
}

func openBell(path string) (*bell, error) {
	f, err := os.OpenFile(path+"-bell", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		f.Close()
		return nil, err
	}
	if _, err := unix.InotifyAddWatch(fd, path+"-bell", unix.IN_MODIFY); err != nil {
		unix.Close(fd)
		f.Close()
		return nil, err
	}
	b := &bell{file: f, notify: os.NewFile(uintptr(fd), path+"-bell (inotify)"), rung: make(chan struct{}, 1), next: make(chan struct{})}
	go b.listen()
	return b, nil
}

// ring tells every watcher that a change was logged.
func (b *bell) ring() {
	_, _ = b.file.WriteAt([]byte{1}, 0)
}

// listen turns the inotify events into wake-ups on rung until close.
func (b *bell) listen() {
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		if _, err := b.notify.Read(buf); err != nil {
			return // closed
		}
		select {
		case b.rung <- struct{}{}:
		default: // a wake-up is pending already
		}
		b.mu.Lock()
		b.gen++
		close(b.next)
		b.next = make(chan struct{})
		b.mu.Unlock()
	}
}

// heardSoFar returns the count of wake-ups heard so far and a channel
// closed at the next one: a writer waiting for the write lock takes it
// before it tries, so that a commit between its try and its wait is not
// missed.
func (b *bell) heardSoFar() (uint64, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.gen, b.next
}

// heard returns the channel that receives a value after one or more rings.
func (b *bell) heard() <-chan struct{} { return b.rung }

func (b *bell) close() error {
	return errors.Join(b.notify.Close(), b.file.Close())
}
