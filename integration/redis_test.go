package integration

import (
	"testing"

	"github.com/baton-pub/baton/internal/redistest"
)

// The hand-over tests run on Redis too: each test starts its own
// redis-server on a free port (skipped without one, failed under CI).
func init() {
	engines["redis"] = func(t *testing.T) string {
		return redistest.Start(t, redistest.Options{KeyspaceEvents: "Ex"}).URL(0)
	}
}
