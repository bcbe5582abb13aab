package sqlite

import "time"

// The bell wakes the other processes' watchers (watch.go) as soon as a
// signalling write commits, instead of at their next poll: every write
// that logs a change to the changes log rings it after its commit, and
// every watcher listens for it. On Linux it is a byte written to the
// PATH-bell file, heard through inotify by every process that has the
// store open (bell_linux.go); elsewhere there is none and the watchers
// poll as before. A ring is a hint, like every signal: the changes log is
// what the watcher reads, so a ring lost or heard twice costs nothing but
// a poll.
//
// With the bell, the watcher's polls are only the fallback: an idle store
// costs a few polls a second instead of fifty, and a change made by
// another process is seen in microseconds, not up to a poll later
// (docs/architecture.md, "SQLite").

// bellQuietPoll is the watcher's slowest poll while it hears the bell:
// rows a process logged without ringing (one on a system without a bell,
// sharing the file over a mount that inotify does not see) wait at most
// this long.
const bellQuietPoll = 250 * time.Millisecond

// bellOn is false only in tests that drive a watcher's polls by hand.
var bellOn = true
