package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/auth"
	"github.com/baton-pub/baton/checker"
	"github.com/baton-pub/baton/client"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/proc"
	"github.com/baton-pub/baton/internal/testcerts"
	"github.com/baton-pub/baton/internal/workload"
)

// tlsNode starts a real `baton serve` over TLS on a fresh SQLite file,
// with a certificate signed by a CA made for the test.
func tlsNode(t *testing.T, extra ...string) (*proc.Node, *testcerts.CA, testcerts.Pair) {
	t.Helper()
	dir := t.TempDir()
	ca, err := testcerts.NewCA(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("node", testcerts.Server)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--tls-cert", cert.CertFile, "--tls-key", cert.KeyFile, "--sse-heartbeat", "200ms", "--log-level", "debug"}, extra...)
	n, err := proc.Start(context.Background(), batonBin, dir, "n1", sqliteEngine(t), args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Kill()
		if t.Failed() {
			if b, err := os.ReadFile(n.Log()); err == nil {
				t.Logf("--- log of %s (last 4 KiB):\n%s", n.Name, tail(b, 4096))
			}
		}
	})
	return n, ca, cert
}

// runCLI runs baton with args and returns its standard output, then its
// standard error, and how it exited.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, batonBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("baton %v still running after 2 minutes:\n%s%s", args, out.String(), errb.String())
	}
	return out.String() + errb.String(), err
}

// TestTLSCLI: over TLS the CLI publishes, subscribes and reads the status
// with --ca-file; without the CA, or over plain HTTP, it is refused and
// nothing is appended.
func TestTLSCLI(t *testing.T) {
	n, ca, _ := tlsNode(t)
	if !strings.HasPrefix(n.URL(), "https://") {
		t.Fatalf("node URL %s", n.URL())
	}
	node := "--node=" + n.URL()
	out, err := runCLI(t, "publish", "quotes", "--id", "a", "--value", `{"p":1}`, node, "--ca-file", ca.CertFile)
	if err != nil || !strings.Contains(out, `"seq":1`) {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	out, err = runCLI(t, "subscribe", "quotes", "--count", "1", node, "--ca-file", ca.CertFile)
	if err != nil || !strings.Contains(out, `"id":"a"`) || !strings.Contains(out, `"value":{"p":1}`) {
		t.Fatalf("subscribe: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"publish without the CA", []string{"publish", "quotes", "--id", "b", "--value", "2", node}, "certificate signed by unknown authority"},
		{"subscribe without the CA", []string{"subscribe", "quotes", "--count", "1", node}, "certificate signed by unknown authority"},
		{"plain http", []string{"publish", "quotes", "--id", "b", "--value", "2", "--node=" + n.Addr}, "HTTPS"},
	} {
		out, err := runCLI(t, tc.args...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("%s: %v, want a failure naming %q:\n%s", tc.name, err, tc.want, out)
		}
	}
	if last := lastSeq(t, node, "--ca-file", ca.CertFile); last != 1 {
		t.Errorf("quotes has %d items after the refused publishes, want 1", last)
	}
}

// TestTLSClientCert: with --tls-client-ca and --tls-require-client-cert, a
// source with a certificate of that CA publishes; one without a
// certificate, or with one of another CA, fails at the handshake. Without
// --tls-require-client-cert, a client without a certificate is served.
func TestTLSClientCert(t *testing.T) {
	dir := t.TempDir()
	clients, err := testcerts.NewCA(dir, "clients")
	if err != nil {
		t.Fatal(err)
	}
	n, ca, _ := tlsNode(t, "--tls-client-ca", clients.CertFile, "--tls-require-client-cert")
	source, err := clients.Issue("source", testcerts.Client)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := ca.Issue("stranger", testcerts.Client) // signed by the nodes' CA, not the clients'
	if err != nil {
		t.Fatal(err)
	}
	node, trust := "--node="+n.URL(), []string{"--ca-file", ca.CertFile}
	withCert := append([]string{"--cert", source.CertFile, "--key", source.KeyFile}, trust...)
	out, err := runCLI(t, append([]string{"publish", "quotes", "--id", "a", "--value", "1", node}, withCert...)...)
	if err != nil || !strings.Contains(out, `"seq":1`) {
		t.Fatalf("publish with a client certificate: %v\n%s", err, out)
	}
	for name, args := range map[string][]string{
		"without a certificate":            trust,
		"with a certificate of another CA": append([]string{"--cert", stranger.CertFile, "--key", stranger.KeyFile}, trust...),
	} {
		out, err := runCLI(t, append([]string{"publish", "quotes", "--id", "b", "--value", "2", node}, args...)...)
		if err == nil || !strings.Contains(out, "tls: certificate required") {
			t.Errorf("publish %s: %v, want a handshake failure:\n%s", name, err, out)
		}
	}
	if last := lastSeq(t, append([]string{node}, withCert...)...); last != 1 {
		t.Errorf("quotes has %d items after the refused publishes, want 1", last)
	}

	optional, oca, _ := tlsNode(t, "--tls-client-ca", clients.CertFile)
	out, err = runCLI(t, "publish", "quotes", "--id", "a", "--value", "1", "--node="+optional.URL(), "--ca-file", oca.CertFile)
	if err != nil {
		t.Fatalf("publish without a certificate to a node that does not require one: %v\n%s", err, out)
	}
}

// lastSeq reads the last seq of topic quotes with `baton status`.
func lastSeq(t *testing.T, args ...string) uint64 {
	t.Helper()
	out, err := runCLI(t, append([]string{"status", "--json"}, args...)...)
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	var st baton.NodeStatus
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&st); err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	for _, tp := range st.Topics {
		if tp.Topic == "quotes" {
			return tp.LastSeq
		}
	}
	return 0
}

// TestTLSReloadKeepsStreams: the certificate files are replaced (with
// their old modification times, so that only the signal reloads them) and
// the node gets SIGHUP: a new connection sees the new certificate, while
// an event stream opened before keeps receiving on its connection, every
// item once and in order.
func TestTLSReloadKeepsStreams(t *testing.T) {
	n, ca, cert := tlsNode(t)
	cfg, err := client.LoadTLS(client.TLSFiles{CAFile: ca.CertFile})
	if err != nil {
		t.Fatal(err)
	}
	access := workload.Access{TLS: cfg}
	h := checker.NewHistory()
	term, err := workload.StartTerminal(context.Background(), "t1", "quotes", []string{n.URL()}, h, workload.TerminalOptions{StreamIdle: 2 * time.Second, Access: access})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Stop()
	src, err := workload.StartSourceWith(context.Background(), "src", "quotes", []string{n.URL()}, h, workload.SourceOptions{Rate: 100, Access: access})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Stop()
	poll.True(t, 30*time.Second, "20 items before the reload", func() bool { return term.Received() >= 20 })
	old, err := served(n.Addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	streams := term.Streams()

	before := map[string]time.Time{}
	for _, f := range []string{cert.CertFile, cert.KeyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		before[f] = fi.ModTime()
	}
	renewed, err := ca.Issue("node", testcerts.Server)
	if err != nil {
		t.Fatal(err)
	}
	for f, mt := range before {
		if err := os.Chtimes(f, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	want := certDER(t, renewed.CertFile)
	if bytes.Equal(want, old) {
		t.Fatal("the renewed certificate is the old one")
	}
	if err := n.Hangup(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "a new connection to get the renewed certificate", func() error {
		got, err := served(n.Addr, cfg)
		if err == nil && !bytes.Equal(got, want) {
			err = errors.New("the old certificate")
		}
		return err
	})
	got := term.Received()
	poll.True(t, 30*time.Second, "20 more items on the open stream", func() bool { return term.Received() >= got+20 })
	if err := src.Stop(); err != nil {
		t.Fatal(err)
	}
	if s := term.Streams(); s != streams {
		t.Errorf("the terminal opened %d streams across the reload, want %d (none dropped)", s, streams)
	}
	last := h.Acks()
	poll.True(t, 30*time.Second, "the terminal to receive every acknowledged item", func() bool { return term.Last() >= last[len(last)-1].Seq })
	if err := term.Stop(); err != nil {
		t.Fatal(err)
	}
	if rep := h.Check(map[string][]string{"t1": {"quotes"}}); !rep.OK() {
		t.Fatalf("checker: %+v", rep)
	}
}

// served returns the certificate a new TLS connection to addr gets.
func served(addr string, cfg *tls.Config) ([]byte, error) {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Raw, nil
}

func certDER(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s holds no PEM", file)
	}
	return blk.Bytes
}

// TestDemoTLS: `baton demo --tls` runs its servers over HTTPS and passes.
func TestDemoTLS(t *testing.T) {
	out, err := runCLI(t, "demo", "--tls", "--json", "--lease-ttl", "1s", "--rate", "100")
	var rep struct {
		OK    bool
		Acked int
	}
	if err != nil || json.NewDecoder(strings.NewReader(out)).Decode(&rep) != nil || !rep.OK || rep.Acked == 0 {
		t.Fatalf("demo --tls: %v\n%s", err, out)
	}
}

// TestTLSTokenRenewed: over TLS on a node that checks tokens, streams whose
// token expires end with an auth event; a terminal asks its token source
// for a fresh token and resumes, and `baton subscribe --token-file` reads
// the file again: every item arrives once and in order.
func TestTLSTokenRenewed(t *testing.T) {
	keyFile, _ := hmacKey(t)
	n, ca, _ := tlsNode(t, "--jwt-key", keyFile)
	token := func(rights auth.Rights, ttl time.Duration) string {
		tok, err := auth.Mint(keyFile, auth.Token{Subject: "it", TTL: ttl, Rights: rights})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	reader := auth.Rights{Subscribe: []string{"quotes"}}
	cfg, err := client.LoadTLS(client.TLSFiles{CAFile: ca.CertFile})
	if err != nil {
		t.Fatal(err)
	}
	h := checker.NewHistory()
	src, err := workload.StartSourceWith(context.Background(), "src", "quotes", []string{n.URL()}, h,
		workload.SourceOptions{Rate: 50, Access: workload.Access{TLS: cfg, Token: token(auth.Rights{Publish: []string{"quotes"}}, time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Stop()
	var renewals atomic.Int32
	term, err := workload.StartTerminal(context.Background(), "t1", "quotes", []string{n.URL()}, h, workload.TerminalOptions{
		StreamIdle: 2 * time.Second,
		Access: workload.Access{TLS: cfg, Token: token(reader, 2*time.Second), TokenSource: func(context.Context) (string, error) {
			renewals.Add(1)
			return token(reader, 2*time.Second), nil
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Stop()

	// The CLI from here on, for 300 items: at 50/s they take longer than
	// its first token's 3s, so it renews at least once.
	poll.True(t, 30*time.Second, "a first acknowledgement", func() bool { return src.Acked() > 0 })
	acks := h.Acks()
	after := acks[len(acks)-1].Seq
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token(reader, 3*time.Second)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	var outMu sync.Mutex
	cli := exec.Command(batonBin, "subscribe", "quotes", "--node", n.URL(), "--ca-file", ca.CertFile, "--token-file", tokenFile,
		"--after", strconv.FormatUint(after, 10), "--count", "300")
	cli.Stdout, cli.Stderr = lockedWriter{&outMu, &out}, lockedWriter{&outMu, &out}
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	defer cli.Process.Kill()
	cliDone := make(chan error, 1)
	go func() { cliDone <- cli.Wait() }()
	poll.True(t, 30*time.Second, "the CLI's first item", func() bool {
		outMu.Lock()
		defer outMu.Unlock()
		return out.Len() > 0
	})
	if err := os.WriteFile(tokenFile, []byte(token(reader, time.Hour)), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-cliDone:
		if err != nil {
			t.Fatalf("baton subscribe: %v\n%s", err, out.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("baton subscribe still running after 2 minutes:\n%s", out.String())
	}
	dec := json.NewDecoder(&out)
	for want := after + 1; want <= after+300; want++ {
		var it struct{ Seq uint64 }
		if err := dec.Decode(&it); err != nil || it.Seq != want {
			t.Fatalf("CLI item %d: seq %d, %v", want-after, it.Seq, err)
		}
	}

	poll.True(t, 30*time.Second, "two renewals of the terminal's token", func() bool { return renewals.Load() >= 2 })
	if err := src.Stop(); err != nil {
		t.Fatal(err)
	}
	acks = h.Acks()
	poll.True(t, 30*time.Second, "the terminal to receive every acknowledged item", func() bool { return term.Last() >= acks[len(acks)-1].Seq })
	if err := term.Stop(); err != nil {
		t.Fatal(err)
	}
	if s := term.Streams(); s < 3 {
		t.Errorf("the terminal opened %d streams, want one more per renewal", s)
	}
	if rep := h.Check(map[string][]string{"t1": {"quotes"}}); !rep.OK() {
		t.Fatalf("checker: %+v", rep)
	}
}

// lockedWriter lets a test read what a child process writes so far.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
