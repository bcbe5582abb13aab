package redis

import (
	"strconv"
	"strings"
)

// keyspace names the keys and channels of one prefix. See doc.go for the
// layout. Every key of a topic carries the hash tag {topic}, so a topic lives
// in one Redis Cluster slot and its scripts touch one slot only.
type keyspace struct {
	p  string
	db int
}

func (k keyspace) topic(t, suffix string) string { return k.p + ":{" + t + "}:" + suffix }

func (k keyspace) lock(t string) string     { return k.topic(t, "lock") }
func (k keyspace) cursor(t string) string   { return k.topic(t, "cursor") }
func (k keyspace) releases(t string) string { return k.topic(t, "releases") }
func (k keyspace) queue(t string) string    { return k.topic(t, "queue") }
func (k keyspace) meta(t string) string     { return k.topic(t, "seq") }
func (k keyspace) msgids(t string) string   { return k.topic(t, "msgids") }
func (k keyspace) hashes(t string) string   { return k.topic(t, "hashes") }
func (k keyspace) ledger(t string) string   { return k.topic(t, "ledger") }
func (k keyspace) events(t string) string   { return k.topic(t, "events") }

// checkpoints is a hash size -> checkpoint JSON (with its cosignatures);
// cpsizes is a sorted set of the sizes, for ordered reads.
func (k keyspace) checkpoints(t string) string { return k.topic(t, "checkpoints") }
func (k keyspace) cpsizes(t string) string     { return k.topic(t, "cpsizes") }

// Node-lease keys share the hash tag {_nodes} (lua/lib.lua builds the same
// names, node_keys): the node lease's hash (epoch, ended, acquired_us,
// expires_us), the set of topics held under it, a string that expires with
// it (for the keyspace event), and the set of node leases not ended.
func (k keyspace) node(kind, n string) string { return k.p + ":{_nodes}:" + kind + ":" + n }
func (k keyspace) nodeLease(n string) string  { return k.node("lease", n) }
func (k keyspace) nodeTopics(n string) string { return k.node("topics", n) }
func (k keyspace) nodes() string              { return k.p + ":{_nodes}:all" }
func (k keyspace) nodesChannel() string       { return k.p + ":nodes" }

// Global keys. The members' keys share the hash tag {_members}, which no
// topic can have (a topic starts with a letter or digit).
func (k keyspace) topics() string        { return k.p + ":topics" }
func (k keyspace) members() string       { return k.p + ":{_members}:nodes" }
func (k keyspace) memberTTLs() string    { return k.p + ":{_members}:expiry" }
func (k keyspace) nodeKeys() string      { return k.p + ":{_members}:keys" }
func (k keyspace) topicsChannel() string { return k.p + ":topics" }

// eventsPattern matches every topic's events channel. The prefix holds no
// glob character (see validPrefix) and '{' is not special in Redis globs.
func (k keyspace) eventsPattern() string { return k.p + ":{*}:events" }

// expiredChannel carries the keyevent notifications of expired keys.
func (k keyspace) expiredChannel() string {
	return "__keyevent@" + strconv.Itoa(k.db) + "__:expired"
}

// nodeOfTTL extracts the node from the name of its node lease's ttl key.
func (k keyspace) nodeOfTTL(name string) (string, bool) {
	n, ok := strings.CutPrefix(name, k.node("ttl", ""))
	return n, ok && n != ""
}

// topicOf extracts the topic from one of its keys or channels with the given
// suffix ("events"); ok is false for any other name.
func (k keyspace) topicOf(name, suffix string) (string, bool) {
	rest, ok := strings.CutPrefix(name, k.p+":{")
	if !ok {
		return "", false
	}
	t, ok := strings.CutSuffix(rest, "}:"+suffix)
	if !ok || t == "" || strings.ContainsAny(t, "{}") {
		return "", false
	}
	return t, true
}

// lockKeys are the KEYS of the topic lock scripts.
func (k keyspace) lockKeys(t string) []string {
	return []string{k.lock(t), k.cursor(t), k.releases(t)}
}
