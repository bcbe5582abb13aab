package auth

import (
	"net/http"
	"strings"
)

// CookieName is the cookie a browser sends its token in: EventSource and
// WebSocket cannot set an Authorization header.
const CookieName = "baton_token"

// QueryParam is the query parameter a token may come in, for clients that
// can set neither a header nor a cookie. Request logs never show it.
const QueryParam = "access_token"

// TokenFrom returns the request's token and where it came from: the
// Authorization header ("Bearer TOKEN"), the baton_token cookie or the
// access_token query parameter, in that order. A request that gives a
// token in two places (or in two cookies) must give the same one.
func TokenFrom(r *http.Request) (token, from string, ok bool) {
	var found []string
	var where []string
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, t, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return "", "header", false
		}
		found, where = append(found, strings.TrimSpace(t)), append(where, "header")
	}
	// Every baton_token cookie counts: another page of the host (another
	// port or path, or a parent domain) may set a second one, and the
	// browser sends both.
	for _, c := range r.CookiesNamed(CookieName) {
		if c.Value != "" {
			found, where = append(found, c.Value), append(where, "cookie")
		}
	}
	if r.URL.RawQuery != "" {
		if q := r.URL.Query()[QueryParam]; len(q) > 0 {
			if len(q) > 1 {
				return "", "query", false
			}
			found, where = append(found, q[0]), append(where, "query")
		}
	}
	if len(found) == 0 {
		return "", "", true
	}
	for _, t := range found[1:] {
		if t != found[0] {
			return "", strings.Join(where, "+"), false
		}
	}
	return found[0], where[0], true
}
