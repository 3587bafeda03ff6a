package report

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stampede-shop/stampede/loadtest/stack"
)

// sample is a small replay's summary: two profiles, a spike, a restart, a
// second with no scrape (NaN), a refusal slower than the last bucket (+Inf).
func sample() *Summary {
	s := &Summary{Scenario: "promo", Description: "test <b>escaped</b>", Started: time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC),
		Machine: "linux/amd64, 2 CPUs", Capacity: 250, Retries: 1, Window: [2]int{2, 5},
		Phases: []Phase{{"warm-up", 0, 2, 75, 0.3}, {"spike", 2, 5, 750, 3}, {"cool-down", 5, 8, 75, 0.3}}}
	for i, name := range []string{"naive", "resilient"} {
		f := float64(i)
		p := Profile{Name: name, Fixes: name, Restarts: map[string]int{"order": 1 - i}, Supervised: i == 0, // as with -target
			Headline: Headline{OfferedRPS: 750, RetryPct: 31 - 27*f, GoodputRPS: 37 + 500*f, GoodputPct: 15 + 200*f, P99Good: 4790 - 4600*f,
				P99Refusal: 12.5, P99RefusalService: 2.5, ErrorRate: map[string]float64{"timeout": 32.6 * (1 - f), "shed": 40 * f}, RecoveryS: -1 + 3*f, Restarts: 1 - i},
			Verdicts: []Verdict{{Claim: "a claim", Held: i == 1, Seen: "seen"}},
			Events:   []stack.Event{{At: s.Started, Service: "order", What: "killed", Detail: "liveness"}}}
		if i == 1 {
			p.Headline.ErrorRate["unavailable"] = 0.3
			p.Headline.Unavailable = map[string]int{"timeout": 580, "dependency_saturated": 25}
		}
		for t := range 8 {
			pt := Point{T: t, Offered: 75 + 600*t%3, Retries: 20 * t % 7, Good: 70 - 10*i, ByClass: map[string]int{"shed": 5 * t, "timeout": 3},
				P50: 10, P99: 100 + float64(t), DBInUse: float64(t), DBWaits: 2, Goroutines: 100, Breakers: 0, Restarts: t / 4,
				RefusedP99Service: 0.5, RefusedP99Shoppers: 3, LagP99: 1.5, Stale: t % 2, CPUBusy: 60 + 5*float64(t), CPUWaiting: 30 + 8*float64(t)}
			if t == 3 {
				pt.DBInUse, pt.Goroutines, pt.RefusedP99Service = math.NaN(), math.NaN(), math.NaN() // the process was down
				pt.RefusedP99Shoppers = math.NaN()                                                   // and refused nothing
			}
			if t == 6 {
				pt.CPUBusy, pt.CPUWaiting = math.NaN(), math.NaN() // not known on this system
			}
			if t == 5 && i == 0 {
				pt.RefusedP99Service = math.Inf(1) // a refusal slower than the histogram's last bucket
			}
			p.Timeline = append(p.Timeline, pt)
		}
		s.Profiles = append(s.Profiles, p)
	}
	return s
}

// The report's numbers are summary.json's numbers: the headline cells of the
// HTML and the Markdown table say what the JSON says.
func TestReportFilesAgree(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, sample()); err != nil {
		t.Fatal(err)
	}
	var s Summary
	data, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	if pt := s.Profiles[0].Timeline[3]; pt.DBInUse != -1 || pt.RefusedP99Service != -1 || pt.RefusedP99Shoppers != -1 {
		t.Fatalf("a missing scrape or no refusal should be -1 in JSON, got %v, %v and %v", pt.DBInUse, pt.RefusedP99Service, pt.RefusedP99Shoppers)
	}
	html := read(t, filepath.Join(dir, "report.html"))
	md := read(t, filepath.Join(dir, "summary.md"))
	for _, p := range s.Profiles {
		row := regexp.MustCompile(`(?s)<tr data-profile="` + p.Name + `">.*?</tr>`).FindString(html)
		if row == "" {
			t.Fatalf("no headline row for %s", p.Name)
		}
		restarts := fmt.Sprint(p.Headline.Restarts)
		if !p.Supervised {
			restarts = "not counted" // the orchestrator's to count, not 0
		}
		for key, want := range map[string]string{
			"goodput_pct": fmt.Sprintf("%.0f %%", p.Headline.GoodputPct), "retry_pct": fmt.Sprintf("%.0f %%", p.Headline.RetryPct), "p99_good_ms": Millis(p.Headline.P99Good),
			"restarts": restarts, "oversold_units": fmt.Sprint(p.Headline.Oversold),
			"missing_orders": fmt.Sprint(p.Headline.Missing), "events_lost": fmt.Sprint(p.Headline.EventsLost),
			"p99_refusal_ms": AtMost(p.Headline.P99RefusalService) + " / " + Millis(p.Headline.P99Refusal),
			"error_rate_pct": Errors(p.Headline.ErrorRate, p.Headline.Unavailable),
		} {
			if !strings.Contains(row, `data-key="`+key+`">`+want+`<`) {
				t.Errorf("%s: HTML cell %s is not %q: %s", p.Name, key, want, row)
			}
		}
		if !strings.Contains(md, fmt.Sprintf("| %s | %.0f | %.0f %% | %.0f | **%.0f %%** | %s | %s / %s |", p.Name, p.Headline.OfferedRPS, p.Headline.RetryPct,
			p.Headline.GoodputRPS, p.Headline.GoodputPct, Millis(p.Headline.P99Good), AtMost(p.Headline.P99RefusalService), Millis(p.Headline.P99Refusal))) {
			t.Errorf("%s: Markdown row disagrees with the JSON:\n%s", p.Name, md)
		}
		if !strings.Contains(md, " | "+Errors(p.Headline.ErrorRate, p.Headline.Unavailable)+" | ") {
			t.Errorf("%s: Markdown errors disagree with the JSON:\n%s", p.Name, md)
		}
		if !regexp.MustCompile(`(?m)^\| ` + p.Name + ` \|.* \| ` + restarts + ` \| \d+ \| \d+ \| \d+ / \d+ \| \d+ \|$`).MatchString(md) {
			t.Errorf("%s: Markdown restarts are not %q:\n%s", p.Name, restarts, md)
		}
	}
	if policy := RetryPolicy(s.Retries); !strings.Contains(html, policy) || !strings.Contains(md, policy) {
		t.Errorf("the reports do not say what the shoppers did after a failure (%q)", policy)
	}
	if strings.Contains(html, "<b>escaped</b>") {
		t.Fatal("the description was not escaped")
	}
	if n := strings.Count(html, "<svg"); n != 2*len(charts(true, nil)) {
		t.Fatalf("%d charts, want %d per profile", n, len(charts(true, nil)))
	}
	if strings.Contains(html, "http://") && !strings.Contains(html, "http://www.w3.org/") || strings.Contains(html, "<script src") || strings.Contains(html, "<link") {
		t.Fatal("the report must be self-contained: no external resources")
	}
}

// A profile's notes, what a reader must know to read its numbers right, are
// in both reports above its verdicts.
func TestNotesAreShown(t *testing.T) {
	s := sample()
	s.Profiles[1].Notes = []string{"the hot SKU was <sold out>"}
	page, err := HTML(s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(page, []byte(`<li class="note">⚠ the hot SKU was &lt;sold out&gt;</li>`)) {
		t.Errorf("the HTML lacks the note")
	}
	if md := Markdown(s); !strings.Contains(md, "## resilient (`FIXES=resilient`)\n\n- ⚠️ the hot SKU was <sold out>\n- ✅") {
		t.Errorf("the Markdown lacks the note:\n%s", md)
	}
}

// A capacity given with -capacity is not passed off as measured: both the
// HTML and the Markdown say where the capacity every rate is relative to
// came from.
func TestCapacitySaysWhereItCameFrom(t *testing.T) {
	for _, calibrated := range []bool{true, false} {
		s := sample()
		s.Calibrated = calibrated
		want, not := "calibrated before the run", "given with -capacity"
		if !calibrated {
			want, not = not, want
		}
		page, err := HTML(s)
		if err != nil {
			t.Fatal(err)
		}
		md := Markdown(s)
		for name, text := range map[string]string{"HTML": string(page), "Markdown": md} {
			if !strings.Contains(text, want) || strings.Contains(text, not) {
				t.Errorf("calibrated %v: the %s does not say %q (or says %q)", calibrated, name, want, not)
			}
		}
	}
}

// Each breaker that left the closed state gets a line of its own, named
// service/breaker; breakers that stayed closed get none, and a report where
// none opened has no such chart.
func TestBreakersChartedByName(t *testing.T) {
	const title = "0 closed · 1 probing · 2 open"
	s := sample()
	page, err := HTML(s)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(page, []byte(title)) {
		t.Error("a chart of breakers where none left the closed state")
	}
	for i := range s.Profiles[1].Timeline {
		state := 0.0
		if i >= 3 && i < 6 {
			state = 2
		}
		s.Profiles[1].Timeline[i].BreakerStates = map[string]float64{"order/postgres_reads": state, "search/postgres_reads": 0}
	}
	if page, err = HTML(s); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(page, []byte(title)) || !bytes.Contains(page, []byte("</i> order/postgres_reads</span>")) ||
		bytes.Contains(page, []byte("</i> search/postgres_reads</span>")) {
		t.Error("want a chart with a line for order/postgres_reads, the breaker that opened, and none for search's")
	}
	if n, want := bytes.Count(page, []byte("<svg")), 2*len(charts(false, []string{"order/postgres_reads"})); n != want {
		t.Errorf("%d charts, want %d", n, want)
	}
}

// Restarts are charted only where the replay counted them: a shop driven with
// -target (here, the resilient profile) restarts out of its sight, and a
// line at 0 would say it saw none.
func TestRestartsChartedOnlyWhereCounted(t *testing.T) {
	for _, supervised := range []bool{true, false} {
		s := sample()
		s.Profiles[1].Supervised = supervised
		page, err := HTML(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := bytes.Contains(page, []byte("</i> restarts</span>")); got != supervised {
			t.Errorf("every shop supervised: %v; a restarts line in the legend: %v", supervised, got)
		}
	}
}

// The page renders in a real browser: headless Chromium loads it from disk
// with the network off, and the DOM it builds has the table and the charts.
func TestReportRendersInChromium(t *testing.T) {
	chromium := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} { // Debian, Ubuntu, GitHub's runners
		if path, err := exec.LookPath(name); err == nil {
			chromium = path
			break
		}
	}
	if chromium == "" {
		t.Fatal("Chromium is needed to check the report renders: apt-get install chromium (.ci/run does)")
	}
	dir := t.TempDir()
	if err := Write(dir, sample()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--enable-logging=stderr", "--v=0", "--dump-dom",
		"file://"+filepath.Join(dir, "report.html"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	dom, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	page := string(dom)
	for _, want := range []string{`<table id="headline">`, `data-profile="naive"`, `data-profile="resilient"`, "Goodput vs offered", "</svg>"} {
		if !strings.Contains(page, want) {
			t.Fatalf("rendered DOM lacks %q", want)
		}
	}
	if strings.Count(page, "<svg") != 2*len(charts(true, nil)) {
		t.Fatalf("rendered %d charts", strings.Count(page, "<svg"))
	}
	// Each chart has its legend under it, a swatch of its colour per line.
	legends := regexp.MustCompile(`<figcaption class="legend">`).FindAllStringIndex(page, -1)
	swatch := regexp.MustCompile(`<i class="sw" style="background:\s*(#[0-9a-f]{6}|rgb\(\d+, \d+, \d+\))`)
	if len(legends) != 2*len(charts(true, nil)) || !strings.Contains(page, "some task waiting for a CPU</span>") ||
		len(swatch.FindAllString(page, -1)) < 2*len(charts(true, nil)) {
		t.Fatalf("%d legends, %d swatches", len(legends), len(swatch.FindAllString(page, -1)))
	}
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(line, "CONSOLE") || strings.Contains(line, "Uncaught") {
			t.Fatalf("the page logged an error: %s", line)
		}
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A second with no value is a gap in the line, not a straight line across.
func TestSegmentsBreakAtMissingSeconds(t *testing.T) {
	var pts []Point
	for i, v := range []float64{1, math.NaN(), 2, 30, -1, -1, 0.01} {
		pts = append(pts, Point{T: i, DBInUse: v})
	}
	segs := segments(pts, func(p Point) float64 { return p.DBInUse }, 0.1, 20)
	got := [][]float64{}
	for _, s := range segs {
		var ys []float64
		for _, xy := range s {
			ys = append(ys, xy.Y)
		}
		got = append(got, ys)
	}
	want := [][]float64{{1}, {2, 20}, {0.1}} // clamped to the axis
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("segments %v, want %v", got, want)
	}
}

// A second between two gaps (the process was up for one scrape) shows as a
// dot: a line through one point draws nothing.
func TestALoneSecondIsADot(t *testing.T) {
	s := sample()
	c := chart{title: "pool", unit: "connections", series: []series{{"in use", blue, func(p Point) float64 { return p.DBInUse }}}}
	nan := math.NaN()
	draw := func(vs ...float64) string {
		var pts []Point
		for i, v := range vs {
			pts = append(pts, Point{T: i, DBInUse: v})
		}
		out, err := svg(s, c, pts, 20)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	arc := regexp.MustCompile(`[\d.]A[\d.]+,[\d.]+ 0 1 1 `) // a circle is drawn as two arcs
	arcs := func(svg string) int { return len(arc.FindAllStringIndex(svg, -1)) }
	if lone, none := arcs(draw(nan, 5, nan, nan)), arcs(draw(nan, nan, nan, nan)); lone <= none {
		t.Fatalf("a lone second adds %d arcs to the chart, want a dot", lone-none)
	}
	if two, none := arcs(draw(nan, 5, 6, nan)), arcs(draw(nan, nan, nan, nan)); two != none {
		t.Fatalf("two seconds in a row are a line, not dots (%d arcs more)", two-none)
	}
}

// The judged window is shaded yellow and a fault red, as the page says, and
// every fill is a colour a browser draws: a premultiplied color.RGBA with a
// low alpha once came out as fill:#2D225300, transparent, and the yellow band
// the report promised was nowhere.
func TestTheWindowAndTheFaultsAreShaded(t *testing.T) {
	s := sample()
	s.Faults = []Fault{{Kind: "postgres down", From: 3, To: 4}}
	out, err := svg(s, charts(true, nil)[0], s.Profiles[0].Timeline, 1000)
	if err != nil {
		t.Fatal(err)
	}
	fill := regexp.MustCompile(`fill:(#[0-9A-Fa-f]+|none)(;fill-opacity:([\d.]+))?`)
	shades := map[string]string{}
	for _, m := range fill.FindAllStringSubmatch(string(out), -1) {
		if m[1] != "none" && len(m[1]) != 7 {
			t.Fatalf("fill %s is not a colour a browser draws", m[0])
		}
		if m[3] != "" {
			shades[strings.ToUpper(m[1])] = m[3]
		}
	}
	// Premultiplying and back rounds a channel by one or two.
	near := func(a, b string) bool {
		var x, y [3]int
		fmt.Sscanf(a, "#%02X%02X%02X", &x[0], &x[1], &x[2])
		fmt.Sscanf(b, "#%02X%02X%02X", &y[0], &y[1], &y[2])
		for i := range x {
			if d := x[i] - y[i]; d < -2 || d > 2 {
				return false
			}
		}
		return true
	}
	for name, colour := range map[string]string{"the judged window": "#FFD200", "the fault": "#D62728"} {
		shaded := false
		for fill, opacity := range shades {
			shaded = shaded || near(fill, colour) && opacity != "0"
		}
		if !shaded {
			t.Errorf("%s is not shaded %s (translucent fills: %v)", name, colour, shades)
		}
	}
}

// An axis up to 27,000 is labelled 0 and 25000, not "0.00" and "25000.00"
// (gonum's default labels for that range), and small steps keep their
// decimals.
func TestAxisLabelsHaveNoTrailingZeros(t *testing.T) {
	labels := func(top float64) []string {
		var ls []string
		for _, tk := range (plainTicks{}).Ticks(0, top) {
			if tk.Label != "" {
				ls = append(ls, tk.Label)
			}
		}
		return ls
	}
	for top, want := range map[float64]string{27000: "[0 25000]", 7000: "[0 3000 6000]", 1.08: "[0 0.5 1]"} {
		if got := fmt.Sprint(labels(top)); got != want {
			t.Errorf("axis to %v: labels %s, want %s", top, got, want)
		}
	}
	s := sample()
	c := chart{title: "goroutines", unit: "goroutines", series: []series{{"goroutines", purple, func(p Point) float64 { return p.Goroutines }}}}
	out, err := svg(s, c, s.Profiles[0].Timeline, 27000)
	if err != nil {
		t.Fatal(err)
	}
	if svg := string(out); !strings.Contains(svg, ">25000<") || strings.Contains(svg, "25000.00") {
		t.Error("the chart's y axis is not labelled 25000")
	}
}

// The unavailable answers say which 503 they were: the error codes they
// carried, the most frequent first, beside the class's rate; not beside a
// rate too small to show.
func TestErrorsNameTheUnavailableCodes(t *testing.T) {
	for _, tt := range []struct {
		rates map[string]float64
		codes map[string]int
		want  string
	}{
		{map[string]float64{"shed": 45.4, "unavailable": 0.32}, map[string]int{"dependency_saturated": 25, "timeout": 580, "pool_timeout": 25},
			"shed 45.4 %, unavailable 0.3 % (codes: timeout 580, dependency_saturated 25, pool_timeout 25)"},
		{map[string]float64{"unavailable": 1}, map[string]int{"": 3}, "unavailable 1.0 % (codes: no code 3)"},
		{map[string]float64{"shed": 2, "unavailable": 0.01}, map[string]int{"timeout": 1}, "shed 2.0 %"},
		{map[string]float64{"timeout": 3}, nil, "timeout 3.0 %"},
		{map[string]float64{"ok": 100}, nil, "none"},
	} {
		if got := Errors(tt.rates, tt.codes); got != tt.want {
			t.Errorf("Errors(%v, %v) = %q, want %q", tt.rates, tt.codes, got, tt.want)
		}
	}
}

func TestMillis(t *testing.T) {
	for ms, want := range map[float64]string{0: "–", 0.45: "0.5 ms", 4.6: "4.6 ms", 139.4: "139 ms", 4790: "4.79 s", 10000: "10 s", 30000: "30 s"} {
		if got := Millis(ms); got != want {
			t.Errorf("Millis(%v) = %q, want %q", ms, got, want)
		}
	}
}

// Every chart's plot is as tall as the others. gonum takes the length of a
// y-axis label from the plot's height: with the units along the y axis, the
// CPUs' plot ("% of CPU time · of the second") kept little more than half.
// The judged window's band spans the plot from bottom to top. (The width of
// the tick labels still moves it by a few points: "10000" against "3".)
func TestEveryPlotIsAsTallAsTheOthers(t *testing.T) {
	s := sample()
	band := regexp.MustCompile(`<path d="M[\d.]+,([\d.]+)L[\d.]+,[\d.]+L[\d.]+,([\d.]+)L[\d.]+,[\d.]+Z" style="fill:#[0-9A-F]{6};fill-opacity`)
	heights := map[string]float64{}
	for _, c := range charts(true, nil) {
		out, err := svg(s, c, s.Profiles[0].Timeline, ymax(s, c))
		if err != nil {
			t.Fatal(err)
		}
		m := band.FindStringSubmatch(string(out))
		if m == nil {
			t.Fatalf("%s: no band", c.title)
		}
		var lo, hi float64
		fmt.Sscan(m[1], &lo)
		fmt.Sscan(m[2], &hi)
		heights[c.title] = hi - lo
	}
	first := heights[charts(true, nil)[0].title]
	for title, h := range heights {
		if math.Abs(h-first) > 5 {
			t.Errorf("plots %v tall; %q differs", heights, title)
			break
		}
	}
}

// The services' p99 of refusals by code reaches summary.json, a code slower
// than the last bucket as -1 like the other p99s, and writing the report
// leaves the summary it was given as it was.
func TestRefusalsByCodeInJSON(t *testing.T) {
	s := sample()
	s.Profiles[1].Headline.RefusalsServiceByCode = map[string]Refusals{"overloaded": {Count: 900, P99: 0.5}, "pool_timeout": {Count: 2, P99: math.Inf(1)}}
	dir := t.TempDir()
	if err := Write(dir, s); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Profiles []struct {
			Headline struct {
				ByCode map[string]Refusals `json:"refusals_service_by_code"`
			} `json:"headline"`
		} `json:"profiles"`
	}
	if err := json.Unmarshal([]byte(read(t, filepath.Join(dir, "summary.json"))), &got); err != nil {
		t.Fatal(err)
	}
	if by := got.Profiles[0].Headline.ByCode; by != nil {
		t.Errorf("a profile without refusals by code has %v in JSON, want none", by)
	}
	if by, want := got.Profiles[1].Headline.ByCode, map[string]Refusals{"overloaded": {900, 0.5}, "pool_timeout": {2, -1}}; !maps.Equal(by, want) {
		t.Errorf("by code in JSON: %v, want %v", by, want)
	}
	if r := s.Profiles[1].Headline.RefusalsServiceByCode["pool_timeout"]; !math.IsInf(r.P99, 1) {
		t.Errorf("writing the report changed the summary: pool_timeout %v, want +Inf", r.P99)
	}
}

// Counts are listed the largest first, refusals the slowest first, ties by
// name.
func TestLargestFirst(t *testing.T) {
	if got, want := byCount(map[string]int{"timeout": 580, "pool_timeout": 25, "": 25}), "timeout 580, no code 25, pool_timeout 25"; got != want {
		t.Errorf("byCount = %q, want %q", got, want)
	}
	byCode := map[string]Refusals{"overloaded": {900, 0.5}, "pool_timeout": {2, math.Inf(1)}, "starting": {5, 1}, "busy": {7, 0.5}}
	if got, want := RefusalsByCode(byCode), "2 pool_timeout > 30 s, 5 starting ≤ 1.0 ms, 7 busy ≤ 0.5 ms, 900 overloaded ≤ 0.5 ms"; got != want {
		t.Errorf("RefusalsByCode = %q, want %q", got, want)
	}
}
