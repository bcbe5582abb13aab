// Package redis is Baton's Redis engine of baton.Store (the shared store of
// docs/design.md, step 4), for servers that span machines. It runs on a
// standalone Redis, over TLS, behind Sentinel, or on Redis Cluster, chosen
// by URL:
//
//	redis://[user:pass@]host:port/db
//	rediss://[user:pass@]host:port/db                    (TLS)
//	redis+sentinel://[user:pass@]h1:26379,h2:26379/MASTER/db
//	rediss+sentinel://...                                (TLS)
//	redis+cluster://[user:pass@]h1:6379,h2:6379/         (seed nodes)
//	rediss+cluster://...                                 (TLS)
//
// with optional parameters (prefix, dial_timeout, wait_replicas,
// wait_timeout, buckets, sentinel_user, sentinel_password, ca_file,
// skip_verify; see Config). It needs Redis 6.2 or later with Lua scripting (EVAL) allowed.
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
// one slot and each script touches one slot; on Redis Cluster the tag is
// that of T's bucket instead (see Cluster). PREFIX is
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
//	                     "commit <seq>[ <n> <items JSON>]" (a small commit's
//	                     items, recent.go), "lock acquired <epoch> <holder>"
//	                     (the holder remembered, heardlock.go),
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
// path ends it; acquire also reads, for the new holder, the cursor checked
// against the hash index and up to 64 items after it: baton.Resume),
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
// Acquire that failed this way may have taken the lease: Lock shows it once
// the replicas have it, and its holder adopts it; an AcquireNode that
// failed this way shows in NodeLeases.
//
// Such a write is on the master, though, until a failover drops it: the
// reads that serve terminals, feed witnesses or decide a hand-over (Cursor,
// Published, Leaves, Checkpoint(s), Snapshot, Lock) are therefore confirmed
// by the replicas (confirm.go): a probe write and WAIT after the read, on
// its connection; too few acknowledgements is ErrUnavailable, never an
// answer that a failover can take back.
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
// On Redis Cluster (redis+cluster://) every script must touch one slot, but
// a topic's fenced scripts read its holder's node lease, which lives in
// {_nodes}, and ending a node lease writes the records of topics in many
// slots. So the topics are grouped in B buckets (buckets=B, default 16),
// and each bucket keeps a copy of every node lease:
//
//	PREFIX:{K}:T:lock, ...        every key of topic T, as above but tagged
//	                              by T's bucket K instead of {T}
//	PREFIX:{K}:_node:N   hash     bucket K's copy of node N's lease: epoch,
//	                              ended, expires_us (the node lease's, as
//	                              {_nodes} set it), live_us
//	PREFIX:{K}:_topics:N set      N's topics in bucket K with unrecorded
//	                              leases
//	PREFIX:{_nodes}:buckets       B, set by the first store opened: a store
//	                              opened with another B is refused
//
// T's bucket is FNV-1a(T) mod B, and bucket i's tag is "_b<i>-<j>", j the
// least that puts it in the i-th of B equal ranges of slots, so that the
// buckets spread evenly over masters that hold equal ranges (keys.go). B
// must never change for an existing deployment: every topic's keys would be
// looked for in another slot. Channels keep their names (PUBLISH reaches
// every node of a cluster). Standalone and Sentinel keep the layout above
// unchanged: one set of scripts serves both, given the key space ("P" or
// "P TAG", lua/lib.lua) and, for commit and checkpoint, the holder's
// node-lease hash as a key: the node lease itself, or its copy in the
// topic's bucket. The topics set and the members stay global, written by
// commands of their own.
//
// Liveness within a bucket is decided in the bucket alone: a topic lease is
// live while it has no record and its holder's copy in the bucket is at its
// node_epoch, not ended, and now < live_us by that master's clock. Acquire,
// commit, checkpoint, release and expire all read the lock and the copy in
// one script, so two holders can never both be live for one topic, and
// exactly one record is written per ended epoch (recorded_epoch), whatever
// the copies hold. What the copies must also get right is the timing:
//
//   - Never live shorter than the holder trusts its node lease. AcquireNode
//     and RenewNode note the local monotonic time t0 before the {_nodes}
//     script, then push the lease into every bucket (lua/copynode.lua, one
//     script per bucket, pipelined: one round trip per master, in
//     parallel), each with remaining = ttl - (time elapsed since t0). The
//     copy is live until live_us = max(expires_us, its own TIME +
//     remaining): by real time at least t0 + ttl, whatever the skew between
//     the two masters' clocks. The elector trusts its node lease until
//     sent+ttl-margin, sent <= t0 (elector/session.go), so it stops before
//     any copy lapses: fail-closed as on one server. expires_us is what Lock
//     and the records report (a lapsed lease's record is dated at it), so
//     on a cluster with synchronised clocks they read as on one server.
//   - Never revived. A copy only takes a push of its own epoch or a later
//     one, and never once ended: lua/endcopy.lua leaves a tombstone (the
//     epoch, ended) even in a bucket that had no copy. A push of a later
//     epoch ends the earlier epoch's copy and records its topics
//     ("expired"). A push that fails leaves the copy at its earlier
//     live_us: that bucket's topics fence early (safe). If the copy lapsed
//     before the next push (or the next Acquire there) mends it, that push
//     first records its topic leases as expired, as one server does for a
//     lapsed node lease: a lapsed topic lease never comes back, and the node
//     goes on in the bucket with new ones (integration/cluster_test.go
//     fails if a renewal does not reach the buckets).
//   - Ended with the node lease. ReleaseNode and ExpireNode mark the node
//     lease ended on {_nodes} first (its script writes no topic: the
//     {_nodes} topics sets are empty on Cluster), then end every bucket's
//     copy, writing the records of its topics, one script per bucket. A
//     copy may outlive the node lease by the difference in delivery delay
//     of the two scripts: ending it at once is as safe as on one server,
//     since the holder stopped trusting the node lease before {_nodes} let
//     it lapse. A bucket a crash or an outage kept from being ended keeps
//     its copy until live_us; its topics are then recorded ("expired") by
//     the next Acquire or Expire of each, as any lapsed lease, and an
//     ExpireNode of a node lease already ended sweeps the buckets again.
//   - Acquire needs a live copy of the caller's node lease in the bucket.
//     If there is none (a missed push, or the node lease was taken through
//     another store handle) Acquire reads the node lease on {_nodes} and,
//     if it is live at that epoch, copies it with what is left of it (the
//     {_nodes} master's expiry minus its TIME, less the local time since
//     the read), then tries once more; else ErrLeaseLost.
//
// Cost. An idle node's renewal is one {_nodes} script plus B copy scripts
// every TTL/4, so 4(B+1)/TTL scripts per second per node, the copies spread
// over the masters, about B/masters each per renewal (16 buckets, 3
// masters, TTL 2s: 34 scripts/s per node, 11 of them on each master).
// NodeLeases adds B read-only scripts (the per-bucket counts of each
// node's topics), reused until a lock changes (bucketCounts). Measured
// with 3 nodes and 300 idle topics (docs/benchmarks.md): 111 scripts/s in
// all, 31 to 42 per master, whatever the number of topics. That is the
// least a design with one-slot scripts can do while a topic's commit checks
// its holder in the same step: a copy per (node, slot in use) is needed,
// and buckets bound the slots in use to B whatever the number of topics.
// The price is that topics spread over masters by bucket, so B should be a
// few times the number of masters; more buckets spread them more finely and
// cost more per renewal, linearly. (The other design the issue names, the
// node lease's expiry carried in each topic lock, costs a write per topic
// per renewal: O(topics), the cost the node lease removed.)
//
// Also on Cluster:
//
//   - WAIT (wait_replicas) is sent on a connection to the master of the
//     script's slot, pipelined with the script: WAIT counts the replicas of
//     its own server. The bucket copy pipelines are not waited on: a copy
//     lost in a failover only makes its topics fence early, and a lost end
//     leaves a copy that lapses by itself.
//   - The replication watch (failover.go) reads each bucket's master's
//     replication id, one INFO per master, and after a change runs
//     lua/failover.lua on the topics of that master's buckets only.
//   - Notifications: PUBLISH reaches every node, so the one pub/sub
//     connection (to any node) hears every channel. Keyspace events are per
//     server, so the expired-key channel is not used on Cluster and Open
//     does not CONFIG SET: the elector needs no push for a lapsed node
//     lease, its watch re-reads NodeLeases at each expiry it knows of
//     (elector/session.go), and standbys arm timers from Lease.Remaining.
//   - Client: no retries and no redirects (MaxRedirects -1): a MOVED or
//     ASK, like a dropped connection, is ErrUnavailable and makes the store
//     re-read the slot map at once (at most every 100ms); the caller
//     retries. The slot map is also re-read every second.
//   - Members' TIME is read from whichever master the pipeline picks: their
//     expiry is judged with the masters' clocks in step (NTP), as Sentinel
//     failover already requires.
//
// TestClusterConformance runs the conformance suite on three masters with a
// replica each; integration/cluster_test.go kills a Baton node, and fails
// over and kills every master, with nothing acknowledged lost.
package redis
