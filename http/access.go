package http

import (
	"context"
	"math"
	"net"
	nethttp "net/http"
	"strconv"
	"strings"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/auth"
	"github.com/baton-pub/baton/forward"
	"github.com/baton-pub/baton/wire"
)

// need is what a route asks of the caller: a right, on the route's
// {topic} for the publish and subscribe rights.
type need struct {
	right auth.Right
	// public routes need no token even when the node checks tokens.
	public bool
}

// routeNeeds is the one table in code of who may call what; docs/api.md
// ("Access") is the other, for people. A route missing here is refused.
// Keys are "METHOD PATTERN" as registered in NewServer.
func (s *Server) routeNeeds() map[string]need {
	ledger := need{right: auth.Subscribe, public: s.cfg.PublicLedger}
	return map[string]need{
		"GET /v1/topics":                           {right: auth.Subscribe}, // filtered to the topics the token may read
		"GET /v1/topics/{topic}":                   {right: auth.Subscribe},
		"DELETE /v1/topics/{topic}":                {right: auth.Admin},
		"GET /v1/topics/{topic}/retention":         {right: auth.Admin},
		"PUT /v1/topics/{topic}/retention":         {right: auth.Admin},
		"GET /v1/topics/{topic}/items":             {right: auth.Subscribe},
		"POST /v1/topics/{topic}/items":            {right: auth.Publish},
		"GET /v1/topics/{topic}/events":            {right: auth.Subscribe},
		"GET /v1/events":                           {right: auth.Subscribe}, // each topic and pattern checked by the handler (multi.go)
		"GET /v1/ws":                               {right: auth.Subscribe}, // each frame's topic checked by the handler (ws.go)
		"GET /v1/topics/{topic}/snapshot":          {right: auth.Subscribe},
		"GET /v1/topics/{topic}/handovers":         {right: auth.Admin},
		"GET /v1/topics/{topic}/lock":              {right: auth.Admin},
		"GET /v1/topics/{topic}/cursor":            {right: auth.Admin},
		"GET /v1/status":                           {right: auth.Admin},
		"GET /v1/status/events":                    {right: auth.Admin},
		"POST /v1/drain":                           {right: auth.Admin},
		"DELETE /v1/drain":                         {right: auth.Admin},
		"GET /ui/":                                 {public: true},
		"HEAD /ui/":                                {public: true},
		"GET /metrics":                             {right: auth.Admin},
		"GET /v1/topics/{topic}/checkpoint":        ledger,
		"GET /v1/topics/{topic}/items/{seq}/proof": ledger,
		"GET /v1/topics/{topic}/consistency":       ledger,
		"GET /v1/topics/{topic}/ledger/diagnose":   {right: auth.Admin},
		"POST /v1/topics/{topic}/ledger/reanchor":  {right: auth.Admin},
		"GET /healthz":                             {public: true},
		"HEAD /healthz":                            {public: true},
		"GET /readyz":                              {public: true},
		"HEAD /readyz":                             {public: true},
		"POST " + forward.Path:                     {public: true}, // signed by a node (forwarded.go)
	}
}

// caller is who made a request: its grant (nil on an open node) and the
// key its limits are counted under.
type caller struct {
	grant *auth.Grant
	key   string
}

// callerOf returns the request's caller, as authorize found it.
func callerOf(r *nethttp.Request) caller {
	if st := stateOf(r); st != nil {
		return st.caller
	}
	return caller{}
}

// may reports whether the request's caller has right on topic: always on
// an open node.
func (s *Server) may(r *nethttp.Request, right auth.Right, topic string) bool {
	return s.cfg.Auth == nil || callerOf(r).grant.Can(right, topic)
}

// authorize checks the request against its route's need: the token (401),
// the right (403), the caller's request rate (429). On success it returns
// the request with its caller attached.
func (s *Server) authorize(w nethttp.ResponseWriter, r *nethttp.Request, n need) (*nethttp.Request, bool) {
	c := caller{key: "addr:" + remoteHost(r)}
	if s.cfg.Auth != nil && !n.public {
		tok, from, ok := auth.TokenFrom(r)
		if !ok {
			s.writeError(w, r, wire.Errorf(baton.CodeUnauthorized, "unusable credentials in %s (want one bearer token)", from))
			return r, false
		}
		g, err := s.cfg.Auth.Verify(tok)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="baton"`)
			s.writeError(w, r, wire.Errorf(baton.CodeUnauthorized, "%s", strings.TrimPrefix(err.Error(), "unauthorized: ")))
			return r, false
		}
		c.grant = g
		if g.Subject != "" {
			c.key = "sub:" + g.Subject
		}
		if n.right == auth.Admin && !g.Can(auth.Admin, "") {
			s.writeError(w, r, wire.Errorf(baton.CodeForbidden, "this route needs the admin right"))
			return r, false
		}
		if topic := r.PathValue("topic"); topic != "" && n.right != auth.Admin && !g.Can(n.right, topic) {
			s.writeError(w, r, wire.Errorf(baton.CodeForbidden, "the token may not %s to topic %q", n.right, clip(topic, 128)))
			return r, false
		}
	}
	if s.limits != nil && !n.public {
		if ok, wait := s.limits.Allow(c.key); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			s.writeError(w, r, wire.Errorf(baton.CodeRateLimited, "too many requests; retry after %s", wait.Round(1e6)))
			return r, false
		}
	}
	if st := stateOf(r); st != nil {
		st.caller = c // the request's own state (requestid.go): no copy
		return r, true
	}
	return r.WithContext(context.WithValue(r.Context(), reqStateKey{}, &reqState{caller: c})), true
}

// remoteHost is the request's remote IP, without its port.
func remoteHost(r *nethttp.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}

// jsonBody refuses a write whose body is not declared JSON: a browser
// sends text/plain and form bodies to any origin without asking first
// (a "simple request"), so only application/json, which needs a CORS
// preflight, may publish.
func jsonBody(r *nethttp.Request) error {
	ct := r.Header.Get("Content-Type")
	mt, _, _ := strings.Cut(ct, ";")
	if !strings.EqualFold(strings.TrimSpace(mt), "application/json") {
		if ct == "" {
			ct = "none"
		}
		return wire.Errorf(baton.CodeMediaType, "Content-Type %s: want application/json", clip(ct, 64))
	}
	return nil
}
