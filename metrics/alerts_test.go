package metrics_test

import (
	"os"
	"os/exec"
	"regexp"
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
	var src strings.Builder
	for _, f := range []string{"metrics.go", "store.go", "topics.go"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	for _, name := range regexp.MustCompile(`baton_[a-z_]+`).FindAllString(string(rules), -1) {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
		if !strings.Contains(src.String(), `"`+base+`"`) {
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
