package auth_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/baton-pub/baton/auth"
)

// FuzzTokenFrom feeds TokenFrom any Authorization header, Cookie header and
// query string, and checks its contract (auth/request.go): a token it
// returns is one the request carries, in the place it names, and every
// other token the request carries is the same one; it refuses a scheme
// other than Bearer and two different tokens; with no token anywhere it
// returns none, without refusing.
func FuzzTokenFrom(f *testing.F) {
	tok := "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.c2ln"
	for _, s := range [][3]string{
		{"Bearer " + tok, "", ""},
		{"bearer  " + tok + " ", "baton_token=" + tok, "access_token=" + tok},
		{"Basic dXNlcjpwdw==", "", ""},
		{"", "a=1; baton_token=" + tok + "; b=2", ""},
		{"", "baton_token=x; baton_token=y", ""},
		{"", `baton_token="` + tok + `"`, "access_token=" + tok},
		{"", "", "access_token=a&access_token=b"},
		{"", "", "access_token=%zz;access_token=" + tok},
		{"Bearer", "baton_token=", "access_token="},
		{"Bearer x", "baton_token=y", ""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, authz, cookie, query string) {
		r := &http.Request{Header: http.Header{}, URL: &url.URL{Path: "/", RawQuery: query}}
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		if cookie != "" {
			r.Header.Set("Cookie", cookie)
		}
		// What the request carries, read with net/http and net/url.
		var carried []string
		var bearer bool
		if authz != "" {
			scheme, t, _ := strings.Cut(authz, " ")
			bearer = strings.EqualFold(scheme, "Bearer")
			carried = append(carried, strings.TrimSpace(t))
		}
		for _, c := range r.CookiesNamed(auth.CookieName) {
			if c.Value != "" {
				carried = append(carried, c.Value)
			}
		}
		queried := r.URL.Query()[auth.QueryParam]
		carried = append(carried, queried...)

		token, from, ok := auth.TokenFrom(r)
		if !ok {
			if token != "" {
				t.Fatalf("refused, yet returned token %q", token)
			}
			if len(carried) == 0 {
				t.Fatalf("refused a request that carries no token (from %q)", from)
			}
			if authz != "" && !bearer || len(queried) > 1 {
				return // a scheme other than Bearer; or two access_token
			}
			for _, c := range carried[1:] {
				if c != carried[0] {
					return // two different tokens
				}
			}
			t.Fatalf("refused one token %q given in %s", carried[0], from)
		}
		if authz != "" && !bearer {
			t.Fatalf("Authorization %q is not Bearer, yet got token %q", authz, token)
		}
		if len(carried) == 0 {
			if token != "" || from != "" {
				t.Fatalf("no token carried, yet got %q from %q", token, from)
			}
			return
		}
		for _, c := range carried {
			if c != token {
				t.Fatalf("got token %q from %s, but the request also carries %q", token, from, c)
			}
		}
		if from != "header" && from != "cookie" && from != "query" {
			t.Fatalf("token %q from %q, not a place", token, from)
		}
	})
}
