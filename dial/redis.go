package dial

import (
	"context"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/redis"
)

func openRedis(ctx context.Context, rawURL string, o Options) (baton.Store, error) {
	return redis.Open(ctx, rawURL, redis.Options{Logger: o.Logger})
}

func redisTransient(err error) bool { return redis.Transient(err) }
