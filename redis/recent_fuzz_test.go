package redis

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/baton-pub/baton"
)

// FuzzHeardCommit feeds commit messages, well formed or not, to the memory
// of what they carried: nothing panics, and whatever RecentPublished then
// vouches for is the items after the position asked, in order, each of the
// topic, never beyond the newest commit heard.
func FuzzHeardCommit(f *testing.F) {
	ps := []baton.Published{{Item: baton.Item{Seq: 4, ID: "a", Value: json.RawMessage(`1`)}, Epoch: 2, Publisher: "n1", PublishedAt: time.Unix(1, 0).UTC()},
		{Item: baton.Item{Seq: 5, ID: "b", Value: json.RawMessage(`{"x":2}`)}, Epoch: 2, Publisher: "n1"}}
	js, _ := json.Marshal(ps)
	f.Add("5 2 "+string(js), uint64(3))
	f.Add("7 2 "+string(js), uint64(5))
	f.Add("5", uint64(5))
	f.Add("reanchor", uint64(0))
	f.Add("5 1 [", uint64(4))
	f.Add(`7 2 [{"seq":7},{"seq":6}]`, uint64(5))
	f.Add(`7 2 [{"seq":6},{"seq":7}]`, uint64(5))
	f.Fuzz(func(t *testing.T, rest string, after uint64) {
		var s Store
		s.recent.heardCommit("t", "5 2 "+string(js))
		s.recent.heardCommit("t", rest)
		got, ok := s.RecentPublished("t", after, 100)
		if !ok {
			return
		}
		upto := s.recent.topics["t"].upto // RecentPublished may have marked it unknown: then it said no
		for i, p := range got {
			if p.Seq != after+uint64(i)+1 || p.Topic != "t" || p.Seq > upto {
				t.Fatalf("after %d: item %d has seq %d (topic %q, newest heard %d)", after, i, p.Seq, p.Topic, upto)
			}
		}
	})
}
