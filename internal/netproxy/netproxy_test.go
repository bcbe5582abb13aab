package netproxy_test

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-pub/baton/internal/netproxy"
)

// echoServer answers every line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, msg string) (string, error) {
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func TestPipes(t *testing.T) {
	p, err := netproxy.Listen("127.0.0.1:0", echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, m := range []string{"a", "hello", strings.Repeat("x", 100_000)} {
		got, err := roundTrip(c, m)
		if err != nil || got != m {
			t.Fatalf("round trip %d bytes: got %d bytes, %v", len(m), len(got), err)
		}
	}
}

// TestCutAndHeal: Cut ends open connections and refuses new ones; Heal
// lets new connections through again.
func TestCutAndHeal(t *testing.T) {
	p, err := netproxy.Listen("127.0.0.1:0", echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := roundTrip(c, "before"); err != nil || got != "before" {
		t.Fatalf("before cut: %q %v", got, err)
	}

	p.Cut()
	if !p.IsCut() {
		t.Fatal("IsCut false after Cut")
	}
	// The open connection is closed by the proxy: a read ends.
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes through a cut proxy", n)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("open connection not closed by Cut")
	}
	// New connections are accepted and closed at once.
	c2, err := net.Dial("tcp", p.Addr())
	if err == nil {
		if _, err := roundTrip(c2, "during"); err == nil {
			t.Fatal("a new connection got through a cut proxy")
		}
		c2.Close()
	}
	if _, refused := p.Stats(); refused == 0 {
		t.Error("no connection counted as refused")
	}

	p.Heal()
	c3, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if got, err := roundTrip(c3, "after"); err != nil || got != "after" {
		t.Fatalf("after heal: %q %v", got, err)
	}
}

// TestTargetDown: a connection to a dead target is closed, not hung, and
// SetTarget redirects new connections.
func TestTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	p, err := netproxy.Listen("127.0.0.1:0", dead)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(c, "x"); err == nil {
		t.Fatal("round trip through a proxy to a dead target")
	}
	c.Close()

	p.SetTarget(echoServer(t))
	c, err = net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := roundTrip(c, "y"); err != nil || got != "y" {
		t.Fatalf("after SetTarget: %q %v", got, err)
	}
}

// TestCloseIsIdempotent: Close ends open connections, waits, and may be
// called twice.
func TestCloseIsIdempotent(t *testing.T) {
	p, err := netproxy.Listen("127.0.0.1:0", echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := roundTrip(c, "x"); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(c, "y"); err == nil {
		t.Fatal("connection alive after Close")
	}
}
