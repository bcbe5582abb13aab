package metrics_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestAlertRules checks deploy/prometheus/alerts.yml with promtool (its
// syntax, and alerts_test.yml: each alert fires when it should and not
// otherwise), and that every baton_ metric it names is one this package
// exports, so a renamed metric cannot leave an alert that never fires.
func TestAlertRules(t *testing.T) {
	rules, err := os.ReadFile("../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	src := exported(t)
	for _, name := range regexp.MustCompile(`baton_[a-z_]+`).FindAllString(string(rules), -1) {
		if !src(name) {
			t.Errorf("alerts.yml names %s, which package metrics does not export", name)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not found (apt-get install prometheus); CI is set, so this is a failure")
		}
		t.Skip("promtool not found (apt-get install prometheus)")
	}
	for _, args := range [][]string{
		{"check", "rules", "../deploy/prometheus/alerts.yml"},
		{"test", "rules", "../deploy/prometheus/alerts_test.yml"},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestDashboard checks deploy/grafana/baton.json: it parses, every panel
// queries something, every baton_ metric it names exists, and every query
// is valid PromQL (promtool checks them as recording rules).
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("../deploy/grafana/baton.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	src := exported(t)
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for j, tg := range p.Targets {
			for _, name := range regexp.MustCompile(`baton_[a-z_]+`).FindAllString(tg.Expr, -1) {
				if !src(name) {
					t.Errorf("panel %q names %s, which package metrics does not export", p.Title, name)
				}
			}
			expr := strings.ReplaceAll(tg.Expr, "$job", "baton")
			fmt.Fprintf(&rules, "      - record: panel_%d_%d\n        expr: %s\n", i, j, strconv.Quote(expr))
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not found; CI is set, so this is a failure")
		}
		t.Skip("promtool not found (apt-get install prometheus)")
	}
	f := filepath.Join(t.TempDir(), "dashboard.yml")
	if err := os.WriteFile(f, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput(); err != nil {
		t.Errorf("a dashboard query is not valid PromQL: %v\n%s", err, out)
	}
}

// exported reports whether a metric name (a histogram's _bucket, _count
// and _sum included) is one this package exports.
func exported(t *testing.T) func(string) bool {
	var src strings.Builder
	for _, f := range []string{"metrics.go", "store.go", "topics.go"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	return func(name string) bool {
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			name = strings.TrimSuffix(name, suffix)
		}
		return strings.Contains(src.String(), `"`+name+`"`)
	}
}
