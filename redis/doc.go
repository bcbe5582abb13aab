// Package redis is Baton's Redis engine of baton.Store (the shared store of
// docs/design.md, step 4), for servers that span machines. It runs on a
// standalone Redis, over TLS, or behind Sentinel, chosen by URL:
//
//	redis://[user:pass@]host:port/db
//	rediss://[user:pass@]host:port/db                    (TLS)
//	redis+sentinel://[user:pass@]h1:26379,h2:26379/MASTER/db
//	rediss+sentinel://...                                (TLS)
//
// with optional parameters (prefix, dial_timeout, wait_replicas,
// wait_timeout, sentinel_user, sentinel_password, ca_file, skip_verify; see
// Config). It needs Redis 6.2 or later with Lua scripting (EVAL) allowed.
// Open checks all of that up front and fails with one error naming the
// problem: a bad URL, a wrong password, an unreachable or silent server, a
// missing database, an old server, a user not allowed to run scripts.
//
// # Client
//
// The client is github.com/redis/go-redis/v9. It and rueidis pipeline about
// as fast (both near 1.1M XADD/s here), but Baton's hot paths are single
// Lua scripts over whole batches, so rueidis's automatic pipelining of many
// small commands buys little. go-redis has what the engine leans on: a
// Sentinel failover client that follows +switch-master, scripts by SHA with
// the NOSCRIPT fallback, explicit pipelines (one connection: what WAIT
// needs), and a low-level pub/sub API that reports (re)subscriptions.
// Client retries are off: a lost reply to a script must surface as
// baton.ErrUnavailable to the caller, which knows whether a retry is safe
// (appends are idempotent by msg id; an acquire is not).
//
// # Keys
//
// Every key of a topic T carries the hash tag {T}, so one topic lives in
// one Redis Cluster slot and each script touches one slot. PREFIX is
// "baton" unless set (Options.Prefix or ?prefix=). Times of the lock, the
// cursor, releases and members are microseconds from the server's clock
// (TIME), never a node's, because leases are judged by them. An item's
// ingested time is the clock of the node that took it (the script would
// otherwise build every entry anew), and a leaf's time is the publisher's,
// in nanoseconds, kept exactly because the ledger signs it.
//
//	PREFIX:{T}:lock      hash    the publish lock: holder, epoch, node_epoch,
//	                             acquired_us, expires_us, recorded_epoch. The
//	                             epoch field is the epoch counter (+1 per
//	                             acquire, never reset). A lease is live while
//	                             epoch > recorded_epoch (no release record yet)
//	                             and the holder's node lease is live at
//	                             node_epoch (see Node leases); expires_us is
//	                             when it ended once recorded.
//	PREFIX:{T}:releases  list    release records, newest first (LPUSH): one JSON
//	                             object per ended epoch (holder, epoch, reason,
//	                             at_us, last_seq, last_hash, successor,
//	                             successor_epoch, successor_us). Acquire fills
//	                             the successor fields of the head record.
//	PREFIX:{T}:queue     stream  the queue, one entry per append: entry id
//	                             "<last seq>-0", one field b = "<first seq>
//	                             <ingested_us> " and a record per item
//	                             (entry.go). Items(after, n) reads the entries
//	                             that end in after+1..after+n and the next one.
//	PREFIX:{T}:seq       hash    queue counters: last (last seq given), below
//	                             (every seq under it was trimmed; default 1).
//	PREFIX:{T}:msgids    hash    msg_id -> seq: the idempotency index.
//	PREFIX:{T}:hashes    hash    item hash -> seq: the hash index
//	                             a successor resumes from (docs/design.md, step 5).
//	                             Item hashes are kept as their 32 bytes
//	                             wherever Redis holds them (entry.go).
//	PREFIX:{T}:cursor    hash    seq, hash, epoch, updated_us of the last
//	                             published item.
//	PREFIX:{T}:ledger    stream  the leaves in segments, one per commit (its
//	                             leaves share its time): entry id "<last
//	                             seq>-0", one field s = "<first seq> <epoch>
//	                             <at_ns> <len(publisher)> <publisher><item
//	                             hash>...". Leaves(after, n) reads the segments
//	                             that end in after+1..after+n and the next one.
//	                             Never trimmed.
//	PREFIX:{T}:checkpoints hash  size -> signed ledger checkpoint JSON (root,
//	                             epoch, node, note, at_us, cosigs by node).
//	PREFIX:{T}:cpsizes   zset    checkpoint sizes, for ordered reads.
//	PREFIX:topics        set     every topic appended to or locked.
//	PREFIX:{_nodes}:lease:N   hash   node N's latest node lease: epoch (+1 per
//	                                 AcquireNode, never reset), ended (0|1),
//	                                 acquired_us, expires_us.
//	PREFIX:{_nodes}:topics:N  set    the topics whose unrecorded leases are
//	                                 held under it.
//	PREFIX:{_nodes}:ttl:N     string its epoch, with PX = its ttl: only there so
//	                                 that its expiry raises a keyspace event.
//	PREFIX:{_nodes}:all       set    the nodes whose node lease is not ended.
//	PREFIX:{_members}:nodes   hash   node -> member JSON (addr, state, leases,
//	                                 public_key, heartbeat_us, expires_us).
//	PREFIX:{_members}:expiry  zset   node by expires_us, to drop lapsed members.
//	PREFIX:{_members}:keys    set    "node base64(public key)": every key ever
//	                                 registered, kept after members leave.
//
// The queue and the ledger are streams of spans, an entry per append or
// commit, whose id is the last seq it holds (entry.go): per item, a script
// then adds only the two index entries, and a reader parses one field per
// append instead of two per item. Item hashes are kept as their 32 bytes.
//
// {_members} and {_nodes} can be no topic's tag: a topic starts with a
// letter or digit.
//
// Channels (pub/sub is not per database: the prefix keeps Baton clusters
// sharing a server apart):
//
//	PREFIX:{T}:events    published by the scripts: "append <last_seq>",
//	                     "commit <seq>", "lock acquired <epoch> <holder>",
//	                     "lock released|failed|expired <record JSON>".
//	PREFIX:topics        a topic's name, when it first appears.
//	PREFIX:nodes         "acquired|ended <epoch> <topic,topic,...> <node>": a
//	                     node lease began or ended, with the topics whose
//	                     leases ended with it (up to 1000 a message).
//	__keyevent@DB__:expired  Redis's own: the expiry of PREFIX:{_nodes}:ttl:N.
//
// # Atomic, fenced writes
//
// Every write that depends on ownership or on ordering is one Lua script
// (lua/*.lua, each prefixed with lua/lib.lua), loaded at Open and called by
// SHA: acquirenode, renewnode, releasenode, expirenode (the node lease; see
// Node leases), acquire, release, expire (the topic lock; each writes the
// expired record of a lapsed lease it finds, once, guarded by
// recorded_epoch, so there is exactly one record per ended epoch whatever
// path ends it),
// append (msg id check, seqs, stream entries and both indexes for a whole
// batch: all reads and seq assignment happen before the first write, so an
// error cannot leave half a batch), commit (lease live with this epoch and
// holder and its node lease live, cursor at PrevSeq, every item in the queue
// with its hash; then the leaves and the cursor), checkpoint (fenced as
// commit), trim (in chunks of 1000, each atomic) and
// heartbeat. Reads are single commands or one pipeline: Append is one round
// trip per batch; Items one XRANGE; Published one pipeline of two XRANGEs
// (leaves and items of the same range, joined by seq).
//
// The topics set is global (another Cluster slot), so it is updated outside
// the scripts, once per topic per Store, before the topic's first write.
//
// # Notifications
//
// Each Store keeps one pub/sub connection (PSUBSCRIBE to the events pattern
// and the expired-key channel, SUBSCRIBE to the topics channel), confirmed
// before Open returns, and fans messages out in-process to coalescing
// subscriptions (internal/signal). Writes made through the Store are
// signalled at once, without waiting for the echo. Pub/sub drops messages
// while disconnected, so after every (re)subscription every subscription is
// woken and its owner re-reads. A silent connection is pinged after 15s and
// replaced if the ping goes unanswered.
//
// A release is pushed (the record rides on the lock channel); the end of a
// node lease is one message on the nodes channel per 1000 of its topics
// (one PUBLISH, one delivery per subscribed Store, however many topics: a
// message per topic would cost a command and a delivery per topic and Store
// at the very moment a crashed node's topics are being taken over). A lapse
// is pushed where the server allows keyspace notifications: Open adds "Ex"
// to notify-keyspace-events with CONFIG SET unless Options.KeepServerConfig
// (managed services often forbid CONFIG; it then logs and carries on), and
// the expiry of a node lease's ttl key wakes the standbys within Redis's
// expiry cycle (about 100ms at the default hz): SignalNode at once, and
// SignalLock on each of its topics once the listener has read their set
// (one SMEMBERS per lapse; nothing is written until a standby calls
// ExpireNode or Acquire). Standbys also arm timers from Lease.Remaining, so
// Baton never depends on keyspace events.
//
// # Node leases
//
// Each node holds one node lease (PREFIX:{_nodes}:lease:N), and its topic
// locks under it: a topic lock records the node epoch it was acquired under
// (node_epoch) and is live while it has no release record and that node
// lease is live (same epoch, not ended, now < its expires_us). So RenewNode
// renews every lock of the node in one script that writes the node's keys
// only (its hash and ttl key) and publishes nothing: an idle node costs one
// EVALSHA per renewal, whatever its number of topics, and no per-topic key
// or channel is touched. Lock reports the node lease's expiry as the lease's.
//
// Invariant: an unrecorded topic lease always has its node lease at its
// node_epoch and not ended. Every script that ends a node lease
// (releasenode, expirenode, and acquirenode or renewnode or releasenode
// finding it lapsed) writes, in the same script, the record of every
// unrecorded topic lease in the node's topics set, then marks the node lease
// ended. So liveness is only ever a question of the node lease's expiry,
// and exactly one record per ended epoch still holds. Every fenced script
// (commit, checkpoint) reads the topic lock and the holder's node-lease hash
// in the same script, and refuses unless the epoch and holder match, the
// lease is unrecorded and the node lease is live on the server's clock.
//
// # Replicas, WAIT and Sentinel failover
//
// With wait_replicas=N (Options.WaitReplicas), every append, lock and
// cursor write is followed, on the same connection, by WAIT N; fewer
// acknowledgements within wait_timeout make the call fail with
// baton.ErrUnavailable. The write is then on the master and may or may not
// survive a failover, so the caller treats it as not done: a source retries
// (the msg id makes it a duplicate), a publisher re-reads the cursor. An
// Acquire that failed this way may have taken the lease: Lock shows it, and
// its holder may adopt it once a RenewNode of its node lease is
// acknowledged; an AcquireNode that failed this way shows in NodeLeases.
//
// What TestSentinelFailover shows (one master, one replica, three
// sentinels, wait_replicas=1, SENTINEL FAILOVER while a topic is
// published): every acknowledged item, the cursor, the lease epoch and the
// release records survive on the new master; the next Acquire gets the next
// epoch; a commit under the old epoch is fenced; subscriptions on the
// handles follow the new master. Writes fail with ErrUnavailable until the
// new master has a replica in sync again: about 10s in the test, mostly
// Sentinel waiting 8s before it reconfigures the old master as a replica.
// Run two replicas with wait_replicas=1 to keep writing through a failover.
// Without WAIT, Redis replication is asynchronous: writes acknowledged in
// the last moments before a failover can be lost, including a lease, so an
// epoch could be handed out twice.
//
// Leases are timed by the master's clock (TIME); after a failover the new
// master's clock takes over, so keep the servers' clocks in step (NTP).
//
// After a change of the master's replication id (a failover, or a restart
// that may have lost writes not yet on disk), every node's store runs
// lua/failover.lua once per topic (failover.go): the first to notice ends
// the live lease with a "failed" record, so the topic is re-acquired under a
// new epoch and resumes from the cursor the new master has, and checks that
// the cursor still points at its item. Without WAIT, an epoch may still
// have been handed out on the old master and lost, and handed out again on
// the new one; fencing then rests on (epoch, holder) together, which the
// scripts always check, so the old holder's commits are refused.
// TestReplicationChangeEndsLeases shows it with a restart.
//
// # Cluster
//
// Open builds a standalone or Sentinel client; Cluster is not supported or
// tested yet. A topic's keys share one slot ({T}), but the node-lease scripts
// are not Cluster-ready: acquire, release, expire, commit and checkpoint
// read the holder's node-lease hash in {_nodes}, and the scripts that end a
// node lease write the records of its topics, each in its own slot. What
// Cluster would need (issue 12, item 5):
//
//   - A copy of the node lease in each topic slot: a hash per (node, slot)
//     with the node epoch, expires_us and ended, whose key carries a hash tag
//     that lands in that slot (a table of one tag per slot, as Redisson
//     builds). Commit and checkpoint read the copy in their topic's slot;
//     acquire writes it.
//   - RenewNode renews the node's hash in {_nodes}, then pushes the same
//     expiry into every copy, one script per slot, pipelined per master. A
//     copy only moves forward within its epoch and never revives an ended
//     one, and carries an expiry the node lease had, so it is never live
//     longer than the node lease was. The idle cost is then the number of
//     slots holding a node's topics, not its node count; to keep it O(nodes)
//     topics would be grouped in a fixed number of buckets per master (the
//     topic's keys tagged by bucket instead of by topic, so one copy serves
//     a bucket), trading how finely topics spread over masters for a bounded
//     renewal cost (buckets x nodes scripts per renewal).
//   - Ending a node lease marks its hash ended first, then ends each copy
//     and writes its topics' records per slot: one step per slot rather than
//     one, each exactly once (guarded by recorded_epoch, as now); a copy a
//     crash left behind lapses at its own expiry.
//   - Masters have their own clocks: a copy's expiry set from the {_nodes}
//     master's TIME is judged by the topic master's, so their clocks must
//     stay within a known skew, subtracted from the copies' expiry.
//   - PUBLISH in Cluster reaches every node of the cluster; the per-topic
//     events would move to SPUBLISH on the topic's slot and SSUBSCRIBE, one
//     connection per master.
package redis
