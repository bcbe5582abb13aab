package client_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/client"
	"github.com/baton-pub/baton/internal/testcerts"
	"github.com/baton-pub/baton/wire"
)

func itemEvent(seq int) string {
	return fmt.Sprintf("id: %d\nevent: item\ndata: {\"seq\":%d,\"id\":\"k\",\"value\":1,\"hash\":\"%064x\",\"epoch\":1,\"publisher\":\"p\"}\n\n", seq, seq, seq)
}

const authEvent = "event: auth\ndata: {\"code\":\"unauthorized\",\"message\":\"token expired\"}\n\n"

// TestTokenOnEveryRequest: the token goes as a bearer token on requests
// and streams; a 401 on a request makes the client ask the token source
// for a fresh one and send the request again, once.
func TestTokenOnEveryRequest(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer t2" {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":{"code":"unauthorized","message":"token expired"}}`)
			return
		}
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, itemEvent(1))
			return
		}
		var us []baton.Update
		json.NewDecoder(r.Body).Decode(&us)
		w.WriteHeader(201)
		fmt.Fprintf(w, `{"items":[{"seq":1,"hash":"%064x","msg_id":%q}]}`, 1, us[0].MsgID)
	}))
	defer srv.Close()
	var asked int
	c, err := client.New([]string{srv.URL}, client.Options{Token: "t1", TokenSource: func(context.Context) (string, error) {
		asked++
		return "t2", nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(context.Background(), "t", []baton.Update{{ID: "a", Value: json.RawMessage("1")}}); err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	if err := c.Subscribe(context.Background(), "t", 0, func(client.Event) error { return stop }); err != stop {
		t.Fatal(err)
	}
	if want := "[POST Bearer t1 POST Bearer t2 GET Bearer t2]"; fmt.Sprint(seen) != want || asked != 1 {
		t.Fatalf("requests %v after %d refreshes, want %s after 1", seen, asked, want)
	}

	// Without a token source, a 401 is final.
	plain, _ := client.New([]string{srv.URL}, client.Options{Token: "t1"})
	_, err = plain.Publish(context.Background(), "t", []baton.Update{{ID: "a", Value: json.RawMessage("1")}})
	var ae *wire.Error
	if !errors.As(err, &ae) || ae.Status != 401 {
		t.Fatalf("publish with a stale token and no source: %v", err)
	}
}

// TestAuthEventRefreshesAndResumes: a stream that ends with an auth event
// (its token expired) is resumed with a fresh token after the last item
// received, so the terminal sees every seq once; a token refused at the
// start of a stream even when fresh ends the subscription.
func TestAuthEventRefreshesAndResumes(t *testing.T) {
	var mu sync.Mutex
	var opens []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		opens = append(opens, r.Header.Get("Authorization")+" after "+r.Header.Get("Last-Event-ID"))
		n := len(opens)
		mu.Unlock()
		if n > 5 { // a client that resumes in a loop is stopped by a 400
			w.WriteHeader(400)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		switch r.Header.Get("Authorization") {
		case "Bearer t1": // 1..3, then the token expires
			fmt.Fprint(w, itemEvent(1)+itemEvent(2)+itemEvent(3)+authEvent+itemEvent(4))
		case "Bearer t2": // resends 3 (at least once on the wire), then 4 and 5
			fmt.Fprint(w, itemEvent(3)+itemEvent(4)+itemEvent(5))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		default:
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":{"code":"unauthorized","message":"bad token"}}`)
		}
	}))
	defer srv.Close()
	tokens := []string{"t2"}
	c, _ := client.New([]string{srv.URL}, client.Options{Token: "t1", Backoff: time.Millisecond, TokenSource: func(context.Context) (string, error) {
		if len(tokens) == 0 {
			return "", errors.New("no more tokens")
		}
		tok := tokens[0]
		tokens = tokens[1:]
		return tok, nil
	}})
	var got []uint64
	done := errors.New("done")
	err := c.Subscribe(context.Background(), "t", 0, func(e client.Event) error {
		got = append(got, e.Item.Seq)
		if len(got) == 5 {
			return done
		}
		return nil
	})
	if err != done || fmt.Sprint(got) != "[1 2 3 4 5]" {
		t.Fatalf("got %v, %v; want [1 2 3 4 5]", got, err)
	}
	if want := "[Bearer t1 after 0 Bearer t2 after 3]"; fmt.Sprint(opens) != want {
		t.Fatalf("streams opened %v, want %s", opens, want)
	}

	// A token the node refuses at once, and a fresh one refused as well:
	// the subscription ends with the 401 instead of looping.
	tokens = []string{"bad2", "bad3"}
	bad, _ := client.New([]string{srv.URL}, client.Options{Token: "bad1", Backoff: time.Millisecond, TokenSource: func(ctx context.Context) (string, error) {
		tok := tokens[0]
		tokens = tokens[1:]
		return tok, nil
	}})
	err = bad.Subscribe(context.Background(), "t", 0, func(client.Event) error { return nil })
	var ae *wire.Error
	if !errors.As(err, &ae) || ae.Status != 401 || len(tokens) != 1 {
		t.Fatalf("refused tokens: err %v, %d tokens left (want 1)", err, len(tokens))
	}

	// Without a token source the auth event ends the subscription.
	plain, _ := client.New([]string{srv.URL}, client.Options{Token: "t1"})
	err = plain.Subscribe(context.Background(), "t", 0, func(client.Event) error { return nil })
	if !errors.As(err, &ae) || ae.Code != baton.CodeUnauthorized {
		t.Fatalf("auth event without a token source: %v", err)
	}
}

// TestTLS: a client trusting the node's CA talks to it over https; one
// that does not is refused at the handshake; a client certificate is
// presented when given.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := testcerts.NewCA(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.Issue("node", testcerts.Server)
	if err != nil {
		t.Fatal(err)
	}
	source, err := ca.Issue("source", testcerts.Client)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := "-"
		if len(r.TLS.PeerCertificates) > 0 {
			name = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		fmt.Fprintf(w, `{"node":%q}`, name)
	}))
	srvTLS, err := client.LoadTLS(client.TLSFiles{CertFile: server.CertFile, KeyFile: server.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	srvTLS.ClientCAs = ca.Pool()
	srvTLS.ClientAuth = tls.VerifyClientCertIfGiven
	srv.TLS = srvTLS
	srv.StartTLS()
	defer srv.Close()

	status := func(files client.TLSFiles) (string, error) {
		cfg, err := client.LoadTLS(files)
		if err != nil {
			return "", err
		}
		c, err := client.New([]string{srv.URL}, client.Options{TLS: cfg})
		if err != nil {
			return "", err
		}
		st, err := c.Status(context.Background(), "")
		return st.Node, err
	}
	if name, err := status(client.TLSFiles{CAFile: ca.CertFile}); err != nil || name != "-" {
		t.Fatalf("with the CA: %q, %v", name, err)
	}
	if name, err := status(client.TLSFiles{CAFile: ca.CertFile, CertFile: source.CertFile, KeyFile: source.KeyFile}); err != nil || name != "source" {
		t.Fatalf("with a client certificate: %q, %v", name, err)
	}
	if _, err := status(client.TLSFiles{}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA: %v, want a certificate error", err)
	}
	// A publish to a node whose certificate is not trusted is not retried:
	// it ends with the certificate error, not when its context does.
	plain, _ := client.New([]string{srv.URL}, client.Options{Backoff: time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = plain.Publish(ctx, "t", []baton.Update{{ID: "a", Value: json.RawMessage("1")}})
	if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("publish without the CA: %v, want a certificate error at once", err)
	}
	if _, err := status(client.TLSFiles{CAFile: ca.CertFile, CertFile: source.CertFile}); err == nil {
		t.Fatal("a certificate without its key was accepted")
	}
}
