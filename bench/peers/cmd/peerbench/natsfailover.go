package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/baton-pub/baton/bench"
)

// natsCluster is three nats-servers in one cluster with JetStream: for the
// R3 stream's leader fail-over, and the nats-r3 peer (natsr3.go).
type natsCluster struct {
	dir, bin string
	names    []string
	confs    []string // config file paths
	urls     []string
	srvs     []*server
}

// startNATSCluster starts the three servers, named PREFIX-1..3, and returns
// the first one's config file.
func startNATSCluster(dir, bin, prefix string) (*natsCluster, string, error) {
	c := &natsCluster{dir: dir, bin: bin}
	var cports []int
	for range 3 {
		p, err := bench.FreePort()
		if err != nil {
			return nil, "", err
		}
		cp, err := bench.FreePort()
		if err != nil {
			return nil, "", err
		}
		c.urls = append(c.urls, "nats://127.0.0.1:"+strconv.Itoa(p))
		cports = append(cports, cp)
	}
	var shown string
	for i := range 3 {
		var routes []string
		for _, cp := range cports {
			routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(cp))
		}
		name := prefix + "-" + strconv.Itoa(i+1)
		conf := fmt.Sprintf("listen: %s\nserver_name: %s\njetstream {\n  store_dir: %q\n}\ncluster {\n  name: bench\n  listen: 127.0.0.1:%d\n  routes: [%s]\n}\n",
			strings.TrimPrefix(c.urls[i], "nats://"), name, filepath.Join(dir, name), cports[i], strings.Join(routes, ", "))
		cf := filepath.Join(dir, name+".conf")
		if err := os.WriteFile(cf, []byte(conf), 0o640); err != nil {
			return nil, "", err
		}
		if i == 0 {
			shown = conf
		}
		c.names, c.confs = append(c.names, name), append(c.confs, cf)
		c.srvs = append(c.srvs, nil)
		if err := c.start(i); err != nil {
			c.close()
			return nil, "", err
		}
	}
	return c, shown, nil
}

func (c *natsCluster) start(i int) error {
	s, err := startServer(c.dir, c.names[i], c.bin, "-c", c.confs[i])
	if err != nil {
		return err
	}
	c.srvs[i] = s
	return waitPort(strings.TrimPrefix(c.urls[i], "nats://"), 15*time.Second)
}

func (c *natsCluster) close() {
	for _, s := range c.srvs {
		if s != nil {
			s.kill()
		}
	}
}

// Failover runs a fresh three-server cluster with an R3 file stream and,
// k times, SIGKILLs the stream's leader while a source publishes an item
// every 5 ms: the time from the signal until the first publish sent after
// it is acknowledged (a new leader has the stream). That is timed at the
// source, not at a terminal: an ordered consumer whose consumer was on the
// dead leader notices only after its idle heartbeat (5 s), which would
// time the client, not the fail-over.
func (s *natsSys) Failover(ctx context.Context, k int, pad string) (*bench.PeerFailover, error) {
	dir := filepath.Join(s.req.Dir, "failover")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	c, conf, err := startNATSCluster(dir, s.req.Bins["nats-server"], "fo")
	if err != nil {
		return nil, err
	}
	defer c.close()
	fo := &bench.PeerFailover{Kind: "SIGKILL of the R3 stream's leader", Nodes: 3,
		Note:   "three nats-servers in one cluster, an R3 file stream; timed from the signal until the first publish sent after it is acknowledged (at the source, not a terminal)",
		Config: "the first server's config (the others differ in ports and names):\n" + conf}
	nc, err := nats.Connect(strings.Join(c.urls, ","), nats.Name("peerbench-failover"), nats.ReconnectWait(10*time.Millisecond), nats.MaxReconnects(-1))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		return nil, err
	}
	if err := addClusterStream(ctx, js, &nats.StreamConfig{Name: "FO", Subjects: []string{"fo"}, Storage: nats.FileStorage, Replicas: 3}); err != nil {
		return nil, err
	}
	var n int64
	publish := func() error {
		n++
		b := bench.Batch{Src: "fo", First: n, Due: []int64{time.Now().UnixNano()}, Pad: pad}
		m := nats.NewMsg("fo")
		m.Data = b.AppendItem(nil, 0)
		m.Header.Set(nats.MsgIdHdr, string(b.AppendMsgID(nil, 0)))
		pctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		defer cancel()
		_, err := js.PublishMsg(m, nats.Context(pctx))
		return err
	}
	for f := range k {
		leader, err := streamLeader(ctx, js, "FO", 3)
		if err != nil {
			return fo, fmt.Errorf("fault %d: %w", f+1, err)
		}
		i := indexOf(c.names, leader)
		if i < 0 {
			return fo, fmt.Errorf("fault %d: leader %q is not one of the servers", f+1, leader)
		}
		if err := publish(); err != nil {
			return fo, fmt.Errorf("fault %d: the stream takes no publish before the fault: %w", f+1, err)
		}
		c.srvs[i].kill()
		killed := time.Now()
		var took time.Duration
		for ctx.Err() == nil {
			if publish() == nil {
				took = time.Since(killed)
				break
			}
			if time.Since(killed) > 30*time.Second {
				return fo, fmt.Errorf("fault %d: no publish acknowledged within 30s of killing %s", f+1, leader)
			}
			time.Sleep(5 * time.Millisecond)
		}
		fo.Millis = append(fo.Millis, float64(took.Microseconds())/1000)
		s.logf("nats fail-over %d: killed leader %s, a publish acknowledged %.1f ms later", f+1, leader, float64(took.Microseconds())/1000)
		if err := c.start(i); err != nil {
			return fo, err
		}
	}
	fo.Stats = bench.SampleStats(fo.Millis)
	return fo, nil
}

// addClusterStream makes an R3 stream, retrying while the cluster elects
// its meta leader, and waits until it has a leader and every replica is
// current.
func addClusterStream(ctx context.Context, js nats.JetStreamContext, cfg *nats.StreamConfig) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := js.AddStream(cfg, nats.MaxWait(2*time.Second))
		if err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("add the R%d stream %s: %w", cfg.Replicas, cfg.Name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, err := streamLeader(ctx, js, cfg.Name, cfg.Replicas)
	return err
}

// streamLeader waits until the stream has a leader and want current
// replicas in all, and names the leader.
func streamLeader(ctx context.Context, js nats.JetStreamContext, stream string, want int) (string, error) {
	deadline := time.Now().Add(60 * time.Second)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		si, err := js.StreamInfo(stream, nats.MaxWait(time.Second))
		if err == nil && si.Cluster != nil && si.Cluster.Leader != "" {
			current := 1
			for _, r := range si.Cluster.Replicas {
				if r.Current {
					current++
				}
			}
			if current >= want {
				return si.Cluster.Leader, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "", fmt.Errorf("stream %s has no leader with %d replicas current within 60s", stream, want)
}

func indexOf(xs []string, x string) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}
