package http

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/auth"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/ledger"
	"github.com/baton-pub/baton/wire"
)

// adminLedger is a ledger with the recovery routes that records the
// re-anchor it was asked for.
type adminLedger struct {
	stubLedger
	asked *ledger.ReanchorBody
}

func (l *adminLedger) Diagnose(_ context.Context, topic string) (ledger.Diagnosis, error) {
	return ledger.Diagnosis{Topic: topic, Node: "n1", Agreed: 20, Diverged: true, Advice: []string{"reanchor"}}, nil
}

func (l *adminLedger) Reanchor(_ context.Context, topic string, from uint64, by, reason string) (ledger.ReanchorBody, error) {
	if from != 20 {
		return ledger.ReanchorBody{}, baton.Invalidf("from", "agreed at 20")
	}
	l.asked = &ledger.ReanchorBody{Topic: topic, Seq: from, By: by, Reason: reason, Node: "n1"}
	return *l.asked, nil
}

// TestLedgerRecoveryRoutes: the diagnosis and the re-anchor are served to
// the admin right only; a re-anchor body that is not {"from", "reason"}
// with a one-line reason is a 400 that asks the ledger nothing; a good
// one names the token's subject as who asked.
func TestLedgerRecoveryRoutes(t *testing.T) {
	l := &adminLedger{}
	a := newAuthEnv(t, Config{Ledger: l})
	admin := a.token(time.Hour, auth.Rights{Admin: true})
	sub := a.token(time.Hour, auth.Rights{Subscribe: []string{"*"}})
	hdr := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

	var d ledger.Diagnosis
	if resp := a.do("GET", "/v1/topics/q/ledger/diagnose", nil, hdr(admin), &d); resp.StatusCode != 200 || d.Agreed != 20 || d.Topic != "q" {
		t.Fatalf("diagnose: %d %+v", resp.StatusCode, d)
	}
	var e wire.ErrorResponse
	if resp := a.do("GET", "/v1/topics/q/ledger/diagnose", nil, hdr(sub), &e); resp.StatusCode != 403 {
		t.Fatalf("diagnose with the subscribe right: %d", resp.StatusCode)
	}
	for _, body := range []string{``, `{}`, `{"reason":"x"}`, `{"from":20}`, `{"from":20,"reason":"a\nb"}`, `{"from":20,"reason":"x","more":1}`,
		`{"from":-1,"reason":"x"}`, `{"from":20,"reason":"x"} {}`, `{"from":19,"reason":"x"}`} {
		e = wire.ErrorResponse{}
		resp := a.do("POST", "/v1/topics/q/ledger/reanchor", strings.NewReader(body), hdr(admin), &e)
		if resp.StatusCode != 400 || e.Error == nil || e.Error.Code != baton.CodeInvalid || l.asked != nil {
			t.Errorf("re-anchor %s: %d %+v, asked %+v", body, resp.StatusCode, e.Error, l.asked)
		}
	}
	if resp := a.do("POST", "/v1/topics/q/ledger/reanchor", strings.NewReader(`{"from":20,"reason":"x"}`), hdr(sub), nil); resp.StatusCode != 403 || l.asked != nil {
		t.Fatalf("re-anchor with the subscribe right: %d, asked %+v", resp.StatusCode, l.asked)
	}
	var b ledger.ReanchorBody
	resp := a.do("POST", "/v1/topics/q/ledger/reanchor", strings.NewReader(`{"from":20,"reason":"restored a backup"}`), hdr(admin), &b)
	if resp.StatusCode != 200 || l.asked == nil || l.asked.By != "s" || l.asked.Reason != "restored a backup" || b.Seq != 20 {
		t.Fatalf("re-anchor: %d %+v, asked %+v", resp.StatusCode, b, l.asked)
	}

	// A ledger without the recovery routes answers 404.
	plain := newEnv(t, nil, hub.Options{}, Config{Ledger: stubLedger{}})
	if resp := plain.do("GET", "/v1/topics/q/ledger/diagnose", nil, nil, &e); resp.StatusCode != 404 {
		t.Fatalf("diagnose without recovery routes: %d", resp.StatusCode)
	}
}
