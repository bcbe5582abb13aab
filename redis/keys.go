package redis

import (
	"hash/fnv"
	"strconv"
	"strings"
)

// keyspace names the keys and channels of one prefix. See doc.go for the
// layout. Standalone and Sentinel: every key of a topic carries the hash tag
// {topic}. Redis Cluster: a topic's keys carry the tag of its bucket
// (buckets), so that one copy of a node lease per bucket serves every topic
// in it (doc.go, "Cluster"); either way a topic's scripts touch one slot.
type keyspace struct {
	p  string
	db int
	// buckets are the bucket tags on Redis Cluster, nil otherwise.
	buckets []string
}

// cluster reports whether keys are laid out for Redis Cluster.
func (k keyspace) cluster() bool { return k.buckets != nil }

// bucket is the tag of topic t's bucket on Redis Cluster: FNV-1a of the
// topic modulo the number of buckets. It must never change for an
// existing deployment (nor must the number of buckets): the keys would move.
func (k keyspace) bucket(t string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(t))
	return k.buckets[h.Sum32()%uint32(len(k.buckets))]
}

func (k keyspace) topic(t, suffix string) string {
	if k.cluster() {
		return k.p + ":{" + k.bucket(t) + "}:" + t + ":" + suffix
	}
	return k.p + ":{" + t + "}:" + suffix
}

// space is the key space the topic scripts get as an argument (lua/lib.lua,
// space): the prefix, and on Redis Cluster the topic's bucket tag.
func (k keyspace) space(t string) string {
	if k.cluster() {
		return k.p + " " + k.bucket(t)
	}
	return k.p
}

// bucketSpace is space for a bucket tag.
func (k keyspace) bucketSpace(tag string) string { return k.p + " " + tag }

func (k keyspace) lock(t string) string     { return k.topic(t, "lock") }
func (k keyspace) cursor(t string) string   { return k.topic(t, "cursor") }
func (k keyspace) releases(t string) string { return k.topic(t, "releases") }
func (k keyspace) queue(t string) string    { return k.topic(t, "queue") }
func (k keyspace) meta(t string) string     { return k.topic(t, "seq") }
func (k keyspace) msgids(t string) string   { return k.topic(t, "msgids") }
func (k keyspace) hashes(t string) string   { return k.topic(t, "hashes") }
func (k keyspace) ledger(t string) string   { return k.topic(t, "ledger") }

// events is a topic's channel. Channels have no slot (PUBLISH reaches every
// node of a Cluster), so its name is the same in every mode.
func (k keyspace) events(t string) string { return k.p + ":{" + t + "}:events" }

// checkpoints is a hash size -> checkpoint JSON (with its cosignatures);
// cpsizes is a sorted set of the sizes, for ordered reads.
func (k keyspace) checkpoints(t string) string { return k.topic(t, "checkpoints") }
func (k keyspace) cpsizes(t string) string     { return k.topic(t, "cpsizes") }

// reanchors is a list of the topic's re-anchor notes (base64), oldest
// first.
func (k keyspace) reanchors(t string) string { return k.topic(t, "reanchors") }

// Node-lease keys share the hash tag {_nodes} (lua/lib.lua builds the same
// names, node_keys): the node lease's hash (epoch, ended, acquired_us,
// expires_us), the set of topics held under it, a string that expires with
// it (for the keyspace event), and the set of node leases not ended.
func (k keyspace) node(kind, n string) string { return k.p + ":{_nodes}:" + kind + ":" + n }
func (k keyspace) nodeLease(n string) string  { return k.node("lease", n) }
func (k keyspace) nodeTopics(n string) string { return k.node("topics", n) }
func (k keyspace) nodes() string              { return k.p + ":{_nodes}:all" }
func (k keyspace) nodesChannel() string       { return k.p + ":nodes" }

// bucketsKey records the number of buckets of a Cluster deployment, so that
// a node opened with another number is refused.
func (k keyspace) bucketsKey() string { return k.p + ":{_nodes}:buckets" }

// Per bucket on Redis Cluster (lua/lib.lua builds the same names,
// holder_keys): the bucket's copy of node n's lease, and the set of n's
// topics in the bucket. A leading '_' is no topic's first character.
func (k keyspace) copyLease(tag, n string) string  { return k.p + ":{" + tag + "}:_node:" + n }
func (k keyspace) copyTopics(tag, n string) string { return k.p + ":{" + tag + "}:_topics:" + n }

// holderLease is the node-lease hash that topic t's fenced scripts read for
// holder n: the node lease itself, or on Cluster its copy in t's bucket.
func (k keyspace) holderLease(t, n string) string {
	if k.cluster() {
		return k.copyLease(k.bucket(t), n)
	}
	return k.nodeLease(n)
}

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

// bucketTags returns the hash tags of n buckets: tag i is "_b<i>-<j>" with
// the least j whose slot falls in the i-th of n equal ranges of the 16384
// slots. redis-cli --cluster create gives each master an equal range of
// slots, so the buckets spread evenly over the masters (a tag per bucket
// taken at random would not). The tags depend on n only.
func bucketTags(n int) []string {
	tags := make([]string, n)
	for i := range tags {
		lo, hi := i*slots/n, (i+1)*slots/n
		for j := 0; ; j++ {
			tag := "_b" + strconv.Itoa(i) + "-" + strconv.Itoa(j)
			if s := int(crc16(tag)) % slots; s >= lo && s < hi {
				tags[i] = tag
				break
			}
		}
	}
	return tags
}

// slots is the number of Redis Cluster hash slots.
const slots = 16384

// crc16 is CRC-16/XMODEM, the checksum Redis Cluster hashes keys with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
