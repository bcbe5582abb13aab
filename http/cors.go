package http

import (
	nethttp "net/http"
	"slices"

	"github.com/rs/cors"

	"github.com/baton-pub/baton/wire"
)

// corsPolicy answers browsers of other origins (github.com/rs/cors does
// the protocol; the policy is ours, docs/security.md):
//
//   - an origin in Config.CORSOrigins may call every route and send
//     credentials (the baton_token cookie);
//   - "*" in CORSOrigins lets every origin call every route, without
//     credentials;
//   - any other origin may read (GET, HEAD: event streams, items, proofs)
//     without credentials, and may not publish: the preflight of its POST
//     gets no Access-Control-Allow-Origin, and a POST that comes anyway is
//     refused by allowedOrigin.
type corsPolicy struct {
	origins []string
	listed  *cors.Cors // listed origins, with credentials
	any     *cors.Cors // "*": every origin, every method, no credentials
	read    *cors.Cors // every origin, reads only, no credentials
}

var (
	corsHeaders = []string{"Authorization", "Content-Type", "Last-Event-ID", RequestIDHeader}
	corsExposed = []string{"Retry-After", "WWW-Authenticate", RequestIDHeader, wire.HolderHeader}
)

func newCORS(origins []string) *corsPolicy {
	all := []string{nethttp.MethodGet, nethttp.MethodHead, nethttp.MethodPost}
	p := &corsPolicy{origins: origins}
	p.read = cors.New(cors.Options{AllowOriginFunc: func(string) bool { return true },
		AllowedMethods: []string{nethttp.MethodGet, nethttp.MethodHead}, AllowedHeaders: corsHeaders,
		ExposedHeaders: corsExposed, MaxAge: 600})
	if slices.Contains(origins, "*") {
		p.any = cors.New(cors.Options{AllowedOrigins: []string{"*"}, AllowedMethods: all,
			AllowedHeaders: corsHeaders, ExposedHeaders: corsExposed, MaxAge: 600})
	}
	var listed []string
	for _, o := range origins {
		if o != "*" {
			listed = append(listed, o)
		}
	}
	if len(listed) > 0 {
		p.listed = cors.New(cors.Options{AllowedOrigins: listed, AllowedMethods: all, AllowedHeaders: corsHeaders,
			ExposedHeaders: corsExposed, AllowCredentials: true, MaxAge: 600})
	}
	return p
}

// handler wraps next with the policy.
func (p *corsPolicy) handler(next nethttp.Handler) nethttp.Handler {
	read := p.read.Handler(next)
	var listed, anyOrigin nethttp.Handler
	if p.listed != nil {
		listed = p.listed.Handler(next)
	}
	if p.any != nil {
		anyOrigin = p.any.Handler(next)
	}
	return nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		origin := r.Header.Get("Origin")
		switch {
		case origin == "":
			next.ServeHTTP(w, r)
		case listed != nil && slices.Contains(p.origins, origin):
			listed.ServeHTTP(w, r)
		case anyOrigin != nil:
			anyOrigin.ServeHTTP(w, r)
		default:
			read.ServeHTTP(w, r)
		}
	})
}

// mayWrite reports whether a write (POST) from origin may go on: no Origin
// (not a browser, or a same-origin request of an old browser), an origin
// listed, "*" listed, or the node's own origin.
func (p *corsPolicy) mayWrite(r *nethttp.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || slices.Contains(p.origins, origin) || slices.Contains(p.origins, "*") {
		return true
	}
	return origin == selfOrigin(r)
}

// mayCredential reports whether a request from its origin may act with
// the browser's credentials (the baton_token cookie): no Origin, a listed
// origin ("*" lists none: it goes without credentials), or the node's own.
func (p *corsPolicy) mayCredential(r *nethttp.Request) bool {
	origin := r.Header.Get("Origin")
	return origin == "" || slices.Contains(p.origins, origin) || origin == selfOrigin(r)
}

// selfOrigin is the node's own origin as the request reached it.
func selfOrigin(r *nethttp.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}
