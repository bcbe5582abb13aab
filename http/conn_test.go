package http

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// openConnServer serves on a real listener (with the connection limits
// of cfg) and returns its address.
func openConnServer(t *testing.T, cfg Config) string {
	t.Helper()
	_, ln := openServerConfig(t, cfg, nil)
	return ln.Addr().String()
}

// closedByServer reads conn until the server closes it; it fails the
// test if that takes longer than a generous bound (never reached unless
// the connection is held forever).
func closedByServer(t *testing.T, conn net.Conn) string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(conn)
	if err != nil {
		t.Errorf("connection not closed by the server: %v (read %q)", err, b)
	}
	return string(b)
}

// Idle keep-alive connections and connections whose headers never end are
// closed by the server (Config.IdleTimeout, Config.ReadHeaderTimeout), many
// at once.
func TestIdleAndSlowHeaderConnsClosed(t *testing.T) {
	addr := openConnServer(t, Config{IdleTimeout: 50 * time.Millisecond, ReadHeaderTimeout: 50 * time.Millisecond})
	const n = 100
	var wg sync.WaitGroup
	for i := range n {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if i%2 == 0 { // idle after one request
			if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
		} else { // headers that never end
			if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
				t.Fatal(err)
			}
		}
		wg.Go(func() {
			got := closedByServer(t, conn)
			if i%2 == 0 && !strings.HasPrefix(got, "HTTP/1.1 200") {
				t.Errorf("idle connection: answer %q", got)
			}
		})
	}
	wg.Wait()
}

// A request that declares a body on a route that reads none is answered,
// and its connection closed, without waiting for the body forever (net/http
// would read what is left of it, with no deadline, before answering).
func TestDeclaredBodyNeverSent(t *testing.T) {
	addr := openConnServer(t, Config{ReadTimeout: 50 * time.Millisecond})
	for _, req := range []string{
		"GET /v1/topics HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n",
		"GET /v1/topics/quotes/items HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
		"DELETE /v1/topics HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n",
		"POST /v1/topics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n",
		"GET /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n",
		"POST /v1/topics/quotes/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n",
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(conn, req); err != nil {
			t.Fatal(err)
		}
		got := closedByServer(t, conn)
		conn.Close()
		status, _, _ := strings.Cut(got, "\r\n")
		if !strings.HasPrefix(status, "HTTP/1.1 4") {
			t.Errorf("%q: answer %q", strings.SplitN(req, "\r\n", 2)[0], status)
		}
	}
	// A GET without a body still keeps its connection.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	for range 2 {
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
			t.Fatalf("keep-alive GET: %q %v", line, err)
		}
		for line != "\r\n" && err == nil { // the rest of the answer
			line, err = br.ReadString('\n')
		}
		if _, err := br.Discard(br.Buffered()); err != nil {
			t.Fatal(err)
		}
	}
}
