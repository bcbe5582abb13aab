package bench

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/wire"
)

// KillPhases splits a crash hand-over of many topics, on a sample of the
// orphans, into when each was acquired (its record's successor time), when
// its new item was committed (the cursor's time: the item is its last
// commit) and how long the item then took to reach its terminal, each in
// ms after the signal but the last. The store's clock and the bench's are
// the same machine's here.
type KillPhases struct {
	Sampled   int         `json:"sampled"`
	Acquired  Percentiles `json:"acquired"`
	Committed Percentiles `json:"committed"`
	Delivered Percentiles `json:"delivered"`
}

// phasesSample bounds the topics read for KillPhases (two reads each).
const phasesSample = 300

// killPhases reads the phases of up to phasesSample orphans, spread over
// them, whose items arrived (arrived: Unix ns, 0 if not).
func killPhases(ctx context.Context, hc *http.Client, base, victim string, orphans []string, arrived []int64, t0 time.Time) *KillPhases {
	step := max(1, len(orphans)/phasesSample)
	var mu sync.Mutex
	var acq, com, del []float64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := 0; i < len(orphans); i += step {
		if arrived[i] == 0 {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			t := url.PathEscape(orphans[i])
			var hs wire.HandoversResponse
			var cur baton.Cursor
			if getJSON(ctx, hc, base+"/v1/topics/"+t+"/handovers?limit=10", &hs) != nil ||
				getJSON(ctx, hc, base+"/v1/topics/"+t+"/cursor", &cur) != nil || cur.Seq != 2 {
				return
			}
			var got time.Time
			for _, h := range hs.Handovers {
				if h.Holder == victim && !h.SuccessorAt.IsZero() {
					got = h.SuccessorAt
				}
			}
			if got.IsZero() || cur.UpdatedAt.IsZero() {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			acq = append(acq, ms(got.Sub(t0)))
			com = append(com, ms(cur.UpdatedAt.Sub(t0)))
			del = append(del, ms(time.Unix(0, arrived[i]).Sub(cur.UpdatedAt)))
		})
	}
	wg.Wait()
	if len(acq) == 0 {
		return nil
	}
	return &KillPhases{Sampled: len(acq), Acquired: sampleStats(acq), Committed: sampleStats(com), Delivered: sampleStats(del)}
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
