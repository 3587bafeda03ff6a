package deploy_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every series the Grafana dashboard plots is one the services export: a
// metric renamed in the code would otherwise leave its panel empty, and
// nobody would know until the day they needed it.
func TestDashboardPlotsWhatTheServicesExport(t *testing.T) {
	raw, err := os.ReadFile("compose/grafana/dashboards/stampede.json")
	if err != nil {
		t.Fatal(err)
	}
	var dashboard struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dashboard); err != nil {
		t.Fatal(err)
	}

	// The code's own metrics (Name: "…" in a collector's options), and the
	// collectors it registers from client_golang, whose names it never spells.
	declared := map[string]bool{}
	var code strings.Builder
	for _, root := range []string{"../pkg", "../services"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			src, err := os.ReadFile(path)
			code.Write(src)
			for _, m := range metricNameRE.FindAllStringSubmatch(string(src), -1) {
				declared[m[1]] = true
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	collectors := map[string]string{ // a name's prefix → the registration that exports it
		"go_sql_":       "collectors.NewDBStatsCollector(",
		"go_sched_":     "collectors.MetricsScheduler",
		"go_goroutines": "collectors.NewGoCollector(",
	}
	exported := func(name string) bool {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && declared[base] {
				return true
			}
		}
		if declared[name] {
			return true
		}
		for prefix, registration := range collectors {
			if strings.HasPrefix(name, prefix) && strings.Contains(code.String(), registration) {
				return true
			}
		}
		return false
	}

	seen := 0
	for _, p := range dashboard.Panels {
		for _, target := range p.Targets {
			names := promqlMetrics(target.Expr)
			if len(names) == 0 {
				t.Errorf("panel %q: found no metric in %q", p.Title, target.Expr)
			}
			for _, name := range names {
				seen++
				if !exported(name) {
					t.Errorf("panel %q plots %s, which no service exports", p.Title, name)
				}
			}
		}
	}
	if seen < 10 {
		t.Fatalf("read %d metrics off the dashboard; is it the dashboard?", seen)
	}
}

// metricNameRE finds a metric's name in its collector's options.
var metricNameRE = regexp.MustCompile(`Name:\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"`)

// promqlMetrics returns the metric names of a PromQL expression: the
// identifiers left once strings, label matchers, ranges, by (…) clauses,
// functions and numbers are taken out.
func promqlMetrics(expr string) []string {
	for _, re := range []*regexp.Regexp{promqlString, promqlMatchers, promqlRange, promqlBy} {
		expr = re.ReplaceAllString(expr, " ")
	}
	var names []string
	for _, id := range promqlIdent.FindAllString(expr, -1) {
		if !promqlFunctions[id] {
			names = append(names, id)
		}
	}
	return names
}

var (
	promqlString    = regexp.MustCompile(`"[^"]*"`)
	promqlMatchers  = regexp.MustCompile(`\{[^}]*\}`)
	promqlRange     = regexp.MustCompile(`\[[^\]]*\]`)
	promqlBy        = regexp.MustCompile(`\b(by|without)\s*\([^)]*\)`)
	promqlIdent     = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promqlFunctions = map[string]bool{"sum": true, "max": true, "min": true, "avg": true, "count": true,
		"rate": true, "irate": true, "increase": true, "histogram_quantile": true}
)
