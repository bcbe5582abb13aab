package redistest

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// ClusterOptions configure a Redis Cluster.
type ClusterOptions struct {
	// Masters is the number of masters (default 3, the least Redis Cluster
	// accepts).
	Masters int
	// Replicas is the number of replicas of each master (default 0).
	Replicas int
	// NodeTimeout is cluster-node-timeout: how long a master may be
	// unreachable before its replica takes over; default 1s.
	NodeTimeout time.Duration
}

// Cluster is a Redis Cluster of real redis-server processes, created with
// redis-cli --cluster create: each master serves an equal range of slots.
type Cluster struct {
	// Nodes are every server, masters first as created; after a failover
	// ask Masters for the current ones.
	Nodes []*Server
	t     testing.TB
}

// StartCluster starts Masters*(1+Replicas) servers with cluster mode on,
// joins them into one cluster and returns once every node reports
// cluster_state:ok and every replica is in sync.
func StartCluster(t testing.TB, o ClusterOptions) *Cluster {
	t.Helper()
	Binary(t, "redis-server")
	cli := Binary(t, "redis-cli")
	if o.Masters <= 0 {
		o.Masters = 3
	}
	if o.NodeTimeout <= 0 {
		o.NodeTimeout = time.Second
	}
	c := &Cluster{t: t}
	for range o.Masters * (1 + o.Replicas) {
		// The cluster bus gets its own free port (by default it is the
		// port plus 10000, which may not be free, or not exist).
		bus, err := FreePort()
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		c.Nodes = append(c.Nodes, Start(t, Options{KeyspaceEvents: "Ex", Args: []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.Itoa(int(o.NodeTimeout.Milliseconds())),
			"--cluster-port", strconv.Itoa(bus),
		}}))
	}
	args := []string{"--cluster", "create"}
	for _, n := range c.Nodes {
		args = append(args, n.Addr)
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(o.Replicas), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 4*ReadyTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, cli, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out.String())
	}
	c.WaitReady()
	return c
}

// WaitReady polls until every running node reports cluster_state:ok with
// every slot served, and every replica's link to its master is up.
func (c *Cluster) WaitReady() {
	c.t.Helper()
	waitReady(c.t, "cluster", c.notReady)
}

func (c *Cluster) notReady() string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, n := range c.running() {
		v, err := n.Do(ctx, "CLUSTER", "INFO")
		if err != nil {
			return n.Addr + ": " + err.Error()
		}
		info, _ := v.(string)
		if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
			return n.Addr + ": cluster not ok"
		}
		v, err = n.Do(ctx, "INFO", "replication")
		if err != nil {
			return n.Addr + ": " + err.Error()
		}
		rep, _ := v.(string)
		if strings.Contains(rep, "role:slave") && !strings.Contains(rep, "master_link_status:up") {
			return n.Addr + ": replica not in sync"
		}
	}
	return ""
}

// running are the nodes whose process runs.
func (c *Cluster) running() []*Server {
	var out []*Server
	for _, n := range c.Nodes {
		n.mu.Lock()
		up := n.cmd != nil
		select {
		case <-n.done:
			up = false
		default:
		}
		n.mu.Unlock()
		if up {
			out = append(out, n)
		}
	}
	return out
}

// URL is the cluster's redis+cluster store URL, naming every node as a seed.
func (c *Cluster) URL() string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	return "redis+cluster://" + strings.Join(addrs, ",") + "/"
}

// Client returns a go-redis Cluster client, closed when the test ends.
func (c *Cluster) Client() *goredis.ClusterClient {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	cc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: addrs, DialTimeout: time.Second,
		DisableIdentity: true, Protocol: 2})
	c.t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// Server returns the node listening on addr.
func (c *Cluster) Server(addr string) *Server {
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// MasterOf returns the node that serves key's slot as master, and one of
// its replicas (nil if it has none), as the cluster reports them now.
func (c *Cluster) MasterOf(ctx context.Context, key string) (master, replica *Server, err error) {
	cc := c.Client()
	cc.ReloadState(ctx)
	slot, err := cc.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return nil, nil, err
	}
	shards, err := cc.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, nil, err
	}
	for _, s := range shards {
		if int64(s.Start) > slot || int64(s.End) < slot || len(s.Nodes) == 0 {
			continue
		}
		master = c.Server(s.Nodes[0].Addr)
		if master == nil {
			return nil, nil, fmt.Errorf("master %s of slot %d is not a node of the cluster", s.Nodes[0].Addr, slot)
		}
		// A node's CLUSTER SLOTS may not list a replica yet (gossip): ask
		// the replicas whose master they follow.
		for _, n := range c.running() {
			v, err := n.Do(ctx, "INFO", "replication")
			if info, _ := v.(string); err == nil && strings.Contains(info, "role:slave") &&
				strings.Contains(info, "master_port:"+strconv.Itoa(master.Port)+"\r\n") {
				replica = n
			}
		}
		return master, replica, nil
	}
	return nil, nil, fmt.Errorf("no node serves slot %d", slot)
}
