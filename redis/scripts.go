package redis

import (
	"context"
	"embed"
	"fmt"
	"strconv"

	goredis "github.com/redis/go-redis/v9"
)

//go:embed lua/*.lua
var luaFiles embed.FS

// script is one Lua script: lua/lib.lua followed by lua/NAME.lua.
type script struct {
	name string
	*goredis.Script
	// direct: never batched (batch.go). A node lease renewal keeps every
	// topic of its node and must not wait behind a batch of a takeover's
	// thousands of commands.
	direct bool
}

func newScript(name string) *script {
	lib, err := luaFiles.ReadFile("lua/lib.lua")
	if err != nil {
		panic(err)
	}
	body, err := luaFiles.ReadFile("lua/" + name + ".lua")
	if err != nil {
		panic(err)
	}
	return &script{name: name, Script: goredis.NewScript(string(lib) + "\n" + string(body))}
}

// directScript is newScript for a script that is never batched.
func directScript(name string) *script {
	sc := newScript(name)
	sc.direct = true
	return sc
}

var (
	scriptAcquireNode = newScript("acquirenode")
	scriptRenewNode   = directScript("renewnode")
	scriptReleaseNode = newScript("releasenode")
	scriptExpireNode  = newScript("expirenode")
	scriptNodeLeases  = newScript("nodeleases")
	scriptAcquire     = newScript("acquire")
	scriptRelease     = newScript("release")
	scriptExpire      = newScript("expire")
	scriptLock        = newScript("lock")
	scriptAppend      = newScript("append")
	scriptCommit      = newScript("commit")
	scriptTrim        = newScript("trim")
	scriptHeartbeat   = newScript("heartbeat")
	scriptCheckpoint  = newScript("checkpoint")
	scriptCosign      = newScript("cosign")
	scriptReanchor    = newScript("reanchor")

	allScripts = []*script{scriptAcquireNode, scriptRenewNode, scriptReleaseNode, scriptExpireNode, scriptNodeLeases,
		scriptAcquire, scriptRelease, scriptExpire, scriptLock,
		scriptAppend, scriptCommit, scriptTrim, scriptHeartbeat, scriptCheckpoint, scriptCosign, scriptReanchor}
)

// run calls a script by SHA (EVALSHA), falling back to EVAL if the server
// does not have it (restart, failover to a replica, SCRIPT FLUSH). With
// wait, and Options.WaitReplicas > 0, it then waits on the same connection
// for the replicas to acknowledge (WAIT); too few is ErrUnavailable.
func (s *Store) run(ctx context.Context, sc *script, wait bool, keys []string, args ...any) ([]any, error) {
	if err := s.errClosed(); err != nil {
		return nil, err
	}
	var v any
	var err error
	switch {
	case (!wait || s.opts.WaitReplicas <= 0) && (sc.direct || s.batch == nil):
		v, err = sc.Run(ctx, s.rdb, keys, args...).Result()
	case !wait || s.opts.WaitReplicas <= 0:
		v, err = s.batch.run(ctx, sc, keys, args)
	default:
		v, err = s.runAndWait(ctx, sc, "", keys, args)
	}
	return s.scriptReply(sc, v, err)
}

// scriptReply is the array every script answers with, or the call's error.
func (s *Store) scriptReply(sc *script, v any, err error) ([]any, error) {
	if err != nil {
		return nil, s.mapErr(err)
	}
	out, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("script %s: unexpected reply %T", sc.name, v)
	}
	return out, nil
}

// runAndWait pipelines EVALSHA and WAIT: a pipeline runs on one connection,
// and WAIT covers the writes of its own connection (on Redis Cluster, one to
// the master of the script's slot: waitClient). Too few acknowledgements
// fail the call only if the script wrote what the caller relies on: a reply
// other than "ok" (held, lost, fenced, moved) reports that nothing of the
// caller's was written. A confirmed read (confirm.go) names the topic whose
// probe key is written between the two, and fails on too few whatever the
// reply.
func (s *Store) runAndWait(ctx context.Context, sc *script, probe string, keys []string, args []any) (any, error) {
	ms := s.opts.WaitTimeout.Milliseconds()
	c, err := s.waitClient(ctx, keys[0])
	if err != nil {
		return nil, err
	}
	exec := func(eval func(p goredis.Pipeliner) *goredis.Cmd) (any, error) {
		pipe := c.Pipeline()
		ev := eval(pipe)
		var w *goredis.Cmd
		if probe != "" {
			w = s.probeAndWait(ctx, pipe, probe)
		} else {
			w = pipe.Do(ctx, "WAIT", s.opts.WaitReplicas, ms)
		}
		_, _ = pipe.Exec(ctx)
		v, err := ev.Result()
		if err != nil {
			return nil, err
		}
		if r, ok := v.([]any); ok && len(r) > 0 && probe == "" && sc != scriptAppend && replyStr(r, 0) != "ok" {
			return v, nil
		}
		if err := s.acknowledged(w, sc.name); err != nil {
			return nil, err
		}
		return v, nil
	}
	v, err := exec(func(p goredis.Pipeliner) *goredis.Cmd { return p.EvalSha(ctx, sc.Hash(), keys, args...) })
	if err != nil && goredis.HasErrorPrefix(err, "NOSCRIPT") {
		v, err = exec(func(p goredis.Pipeliner) *goredis.Cmd { return sc.Eval(ctx, p, keys, args...) })
	}
	return v, err
}

// Reply decoding helpers. Scripts reply with arrays of strings and integers.

func replyStr(r []any, i int) string {
	if i >= len(r) {
		return ""
	}
	switch v := r[i].(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	}
	return ""
}

func replyUint(r []any, i int) uint64 {
	if i >= len(r) {
		return 0
	}
	switch v := r[i].(type) {
	case int64:
		return uint64(v)
	case string:
		n, _ := strconv.ParseUint(v, 10, 64)
		return n
	}
	return 0
}

func replyInt(r []any, i int) int64 {
	if i >= len(r) {
		return 0
	}
	switch v := r[i].(type) {
	case int64:
		return v
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	return 0
}

// replyStrs is r[from:] as strings.
func replyStrs(r []any, from int) []string {
	var out []string
	for i := from; i < len(r); i++ {
		out = append(out, replyStr(r, i))
	}
	return out
}
