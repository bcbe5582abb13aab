package dial

import (
	"context"

	"github.com/baton-pub/baton"
)

// openRedis is replaced when the Redis engine lands.
func openRedis(ctx context.Context, rawURL string, o Options) (baton.Store, error) {
	return nil, baton.Invalidf("store", "the redis engine is not built in yet")
}
