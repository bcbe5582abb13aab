package hub

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-pub/baton/sqlite"
)

// BenchmarkResumeNearHead: a terminal that resumes ten items behind the
// head of a topic that has a live terminal, on SQLite (what thousands of
// clients do at once when the node they were on ends), and reads up to
// the head. With the recent frames, no store read (recent.go).
//
//	go test -run - -bench ResumeNearHead -benchmem ./hub/
func BenchmarkResumeNearHead(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "h.db"), sqlite.Options{Sync: "normal"})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	p := newPublisher(b, st, testTopic)
	h := startHub(b, st, Options{})
	live := subscribe(b, h, testTopic, 0)
	lr := newReceiver(b, live, 0)
	p.publish(100)
	lr.until(100, 5*time.Second)
	waitFeedAt(b, h, 100)
	b.ReportAllocs()
	for b.Loop() {
		term, err := h.Subscribe(ctx, testTopic, 90)
		if err != nil {
			b.Fatal(err)
		}
		r := newReceiver(b, term, 90)
		r.until(100, 5*time.Second)
		term.Close()
	}
}
