package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"image/color"
	"maps"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/stampede-shop/stampede/loadtest/load"
)

// chart is one kind of chart; every profile gets one of each, on the same axes.
type chart struct {
	title, unit string
	log         bool // a logarithmic y axis: latencies span 0.1 ms to seconds, pool waits 0 to thousands
	series      []series
}

type series struct {
	name  string
	color color.Color
	value func(p Point) float64
}

var (
	blue   = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	green  = color.RGBA{R: 44, G: 160, B: 44, A: 255}
	red    = color.RGBA{R: 214, G: 39, B: 40, A: 255}
	orange = color.RGBA{R: 255, G: 127, B: 14, A: 255}
	purple = color.RGBA{R: 148, G: 103, B: 189, A: 255}
	grey   = color.RGBA{R: 127, G: 127, B: 127, A: 255}
	brown  = color.RGBA{R: 140, G: 86, B: 75, A: 255}
	pink   = color.RGBA{R: 227, G: 119, B: 194, A: 255}
	olive  = color.RGBA{R: 188, G: 189, B: 34, A: 255}
	cyan   = color.RGBA{R: 23, G: 190, B: 207, A: 255}

	// The judged window and the faults, shaded behind the lines. NRGBA, not
	// RGBA: color.RGBA is alpha-premultiplied, so RGBA{255, 210, 0, 90} is no
	// colour at all (the SVG got fill:#2D225300, which browsers draw
	// transparent).
	windowShade = color.NRGBA{R: 255, G: 210, B: 0, A: 60}
	faultShade  = color.NRGBA{R: 214, G: 39, B: 40, A: 40}
)

var classColor = map[load.Class]color.Color{
	load.Late: cyan, load.Limited: olive, load.Shed: orange, load.Unavailable: purple, load.ServerError: red,
	load.InProgress: blue, load.ClientError: pink, load.Timeout: brown, load.Refused: grey,
}

// charts are the charts of a report whose shops the replay supervised (it
// counted their restarts) or not (-target), with a line for each of the
// breakers (service/name) that left the closed state.
func charts(supervised bool, opened []string) []chart {
	errs := chart{title: "Errors by class", unit: "requests/s"}
	for _, c := range load.Classes {
		if c.Good() {
			continue
		}
		errs.series = append(errs.series, series{string(c), classColor[c], func(p Point) float64 { return float64(p.ByClass[string(c)]) }})
	}
	breakers := chart{title: "Breakers open", series: []series{{"breakers open", orange, func(p Point) float64 { return p.Breakers }}}}
	if supervised {
		// A shop driven with -target restarts at its orchestrator's hands,
		// out of the replay's sight: no line at 0 that says none did.
		breakers.title += " · restarts"
		breakers.series = append(breakers.series, series{"restarts", red, func(p Point) float64 { return float64(p.Restarts) }})
	}
	cs := []chart{
		{title: "Goodput vs offered", unit: "requests/s", series: []series{
			{"offered", grey, func(p Point) float64 { return float64(p.Offered) }},
			{"of it retries", pink, func(p Point) float64 { return float64(p.Retries) }},
			{"goodput", green, func(p Point) float64 { return float64(p.Good) }},
			{"of it served stale (a fallback copy)", blue, func(p Point) float64 { return float64(p.Stale) }},
			{"order service's CPU cap (admissions/s)", orange, func(p Point) float64 { return p.CPUCap }},
		}},
		{title: "Latency: good answers, refusals", unit: "ms (log)", log: true, series: []series{
			{"p50 good", blue, func(p Point) float64 { return p.P50 }},
			{"p99 good", red, func(p Point) float64 { return p.P99 }},
			{"p99 refusals, in the services (≤)", grey, func(p Point) float64 { return p.RefusedP99Service }},
			{"p99 refusals, at the shoppers", brown, func(p Point) float64 { return p.RefusedP99Shoppers }},
			{"p99 wait for a CPU, order service (≤)", orange, func(p Point) float64 { return p.SchedP99Order }},
			{"p99 lag sending, shoppers", purple, func(p Point) float64 { return p.LagP99 }},
		}},
		errs,
		{title: "Order service: DB pool", unit: "connections · waits/s (log)", log: true, series: []series{
			{"in use", blue, func(p Point) float64 { return p.DBInUse }},
			{"waits/s", red, func(p Point) float64 { return p.DBWaits }},
		}},
		{title: "The machine's CPUs", unit: "% of CPU time · of the second", series: []series{
			{"busy", blue, func(p Point) float64 { return p.CPUBusy }},
			{"some task waiting for a CPU", red, func(p Point) float64 { return p.CPUWaiting }},
		}},
		{title: "Order service: goroutines", series: []series{
			{"goroutines", purple, func(p Point) float64 { return p.Goroutines }},
		}},
		breakers,
	}
	if len(opened) > 0 {
		states := chart{title: "Breakers", unit: "0 closed · 1 probing · 2 open"}
		palette := []color.Color{blue, orange, green, red, purple, brown, pink, olive, cyan, grey}
		for i, name := range opened {
			states.series = append(states.series, series{name, palette[i%len(palette)], func(p Point) float64 {
				if v, ok := p.BreakerStates[name]; ok {
					return v
				}
				return math.NaN() // its service was not scraped this second
			}})
		}
		cs = append(cs, states)
	}
	return cs
}

// openedBreakers is every breaker (service/name) that was half-open or open
// in some second of some profile, sorted by name.
func openedBreakers(s *Summary) []string {
	seen := map[string]bool{}
	for _, pr := range s.Profiles {
		for _, pt := range pr.Timeline {
			for name, state := range pt.BreakerStates {
				if state > 0 {
					seen[name] = true
				}
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// svg draws one chart of one profile, with the y axis shared by all profiles
// (ymax) and the phases and the judged window marked.
func svg(s *Summary, c chart, pts []Point, ymax float64) (template.HTML, error) {
	p := plot.New()
	// The unit goes in the title, not along the y axis: gonum takes the
	// length of a y label from the plot's height, and "% of CPU time · of
	// the second" left the plot little more than half of it.
	p.Title.Text = c.title
	if c.unit != "" {
		p.Title.Text += " — " + c.unit
	}
	p.X.Label.Text = "seconds"
	p.X.Min, p.X.Max = 0, float64(duration(s))
	p.Y.Min, p.Y.Max = 0, ymax
	floor := 0.0
	if c.log {
		floor = 0.1
		p.Y.Min = floor
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	} else {
		p.Y.Tick.Marker = plainTicks{}
	}
	p.Add(plotter.NewGrid())

	// The judged window shaded yellow, the faults red.
	band := func(from, to int, c color.Color) error {
		b, err := plotter.NewPolygon(plotter.XYs{{X: float64(from), Y: floor}, {X: float64(to), Y: floor},
			{X: float64(to), Y: ymax}, {X: float64(from), Y: ymax}})
		if err != nil {
			return err
		}
		b.Color, b.Width = c, 0
		p.Add(b)
		return nil
	}
	if err := band(s.Window[0], s.Window[1], windowShade); err != nil {
		return "", err
	}
	for _, f := range s.Faults {
		if err := band(f.From, f.To, faultShade); err != nil {
			return "", err
		}
	}
	for _, ser := range c.series {
		if err := drawSeries(p, ser, segments(pts, ser.value, floor, ymax)); err != nil {
			return "", err
		}
	}
	return inline(p)
}

// drawSeries draws one series, a line per run of seconds that have a value.
func drawSeries(p *plot.Plot, ser series, segs []plotter.XYs) error {
	for _, seg := range segs {
		l, err := plotter.NewLine(seg)
		if err != nil {
			return err
		}
		l.Color = ser.color
		l.Width = vg.Points(1.5)
		p.Add(l)
		if len(seg) == 1 { // a lone second between two gaps: a line of one point draws nothing
			dot, err := plotter.NewScatter(seg)
			if err != nil {
				return err
			}
			dot.Color = ser.color
			dot.Shape = draw.CircleGlyph{}
			dot.Radius = vg.Points(2)
			p.Add(dot)
		}
	}
	return nil
}

// inline renders the plot as an SVG element to put in the page as it is.
func inline(p *plot.Plot) (template.HTML, error) {
	canvas := vgsvg.New(5*vg.Inch, 2.6*vg.Inch)
	p.Draw(draw.New(canvas))
	var buf bytes.Buffer
	if _, err := canvas.WriteTo(&buf); err != nil {
		return "", err
	}
	out := buf.Bytes()
	if i := bytes.Index(out, []byte("<svg")); i > 0 {
		out = out[i:] // drop the XML prolog: the SVG goes inline
	}
	return template.HTML(out), nil // #nosec G203 -- SVG drawn by gonum/plot from numbers, no user input
}

// plainTicks are gonum's default ticks, labelled without trailing zeros:
// for an axis up to 27,000 (the naive shop's goroutines) the default labels
// read "0.00" and "25000.00".
type plainTicks struct{}

func (plainTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i, t := range ts {
		if t.Label != "" {
			ts[i].Label = strconv.FormatFloat(t.Value, 'g', 10, 64)
		}
	}
	return ts
}

func duration(s *Summary) int {
	if len(s.Phases) == 0 {
		return 1
	}
	return s.Phases[len(s.Phases)-1].To
}

// ymax is the top of a chart's y axis: the largest finite value of any
// profile, a little headroom, at least 1. An infinite value (a refusal slower
// than a histogram's last bucket: "more than 30 s") is drawn at the top.
func ymax(s *Summary, c chart) float64 {
	m := 1.0
	for _, pr := range s.Profiles {
		for _, pt := range pr.Timeline {
			for _, ser := range c.series {
				if v := ser.value(pt); !math.IsNaN(v) && !math.IsInf(v, 0) && v > m {
					m = v
				}
			}
		}
	}
	return m * 1.08
}

type row struct {
	Profile Profile
	Charts  []figure
}

// figure is one chart and its legend. The legend is HTML under the chart,
// not gonum's inside it, where it covered the lines it names (the naive
// shop's goroutines peak right under it).
type figure struct {
	SVG    template.HTML
	Legend []legendItem
}

type legendItem struct{ Name, Color string }

func legend(c chart) []legendItem {
	var items []legendItem
	for _, ser := range c.series {
		r, g, b, _ := ser.color.RGBA()
		items = append(items, legendItem{ser.name, fmt.Sprintf("#%02x%02x%02x", r>>8, g>>8, b>>8)})
	}
	return items
}

// HTML renders the report page.
func HTML(s *Summary) ([]byte, error) {
	supervised := true
	for _, pr := range s.Profiles {
		supervised = supervised && pr.Supervised
	}
	cs := charts(supervised, openedBreakers(s))
	tops := make([]float64, len(cs))
	legends := make([][]legendItem, len(cs)) // the same under every profile's chart
	for i, c := range cs {
		tops[i], legends[i] = ymax(s, c), legend(c)
	}
	var rows []row
	for _, pr := range s.Profiles {
		r := row{Profile: pr}
		for i, c := range cs {
			g, err := svg(s, c, pr.Timeline, tops[i])
			if err != nil {
				return nil, err
			}
			r.Charts = append(r.Charts, figure{SVG: g, Legend: legends[i]})
		}
		rows = append(rows, r)
	}
	data, err := json.Marshal(sanitize(s))
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	err = page.Execute(&buf, map[string]any{"S": s, "Rows": rows, "JSON": string(data)})
	return buf.Bytes(), err
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"ms": Millis, "atMost": AtMost, "recovery": Recovery, "errors": Errors, "restarts": RestartsCell,
	"retryPolicy": RetryPolicy,
	"pct":         func(v float64) string { return fmt.Sprintf("%.0f %%", v) },
	"rps":         func(v float64) string { return fmt.Sprintf("%.0f", v) },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Stampede replay: {{.S.Scenario}}</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1600px;padding:0 1rem;color:#222}
.wide{overflow-x:auto}table{border-collapse:collapse;margin:1rem 0;font-size:14px}
th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:right}th:first-child,td:first-child{text-align:left}
th{background:#f4f4f4;font-size:13px}
.grid{display:grid;grid-template-columns:repeat(3,1fr);gap:.5rem}.grid svg{width:100%;height:auto}
.held{color:#1a7f37}.failed{color:#cf222e}.note{color:#9a6700}section{border-top:2px solid #ddd;margin-top:2rem}
figure{margin:0}.legend{font-size:13px;padding:0 1rem 1rem 3rem}
.legend span{display:inline-block;margin-right:1rem}.sw{width:1rem;height:.2rem;display:inline-block;vertical-align:middle}
</style></head><body>
<h1>Stampede replay: <code>{{.S.Scenario}}</code></h1>
<p>{{.S.Description}}</p>
<p>Capacity on this machine ({{.S.Machine}}): <b id="capacity">{{rps .S.Capacity}}</b> requests/s
({{.S.CapacityBasis}}). Phases:
{{range .S.Phases}}<b>{{.Name}}</b> {{.From}}–{{.To}} s at {{rps .Rate}}/s ({{.Times}}× capacity); {{end}}
the verdicts judge seconds {{index .S.Window 0}}–{{index .S.Window 1}} (shaded yellow{{if .S.Faults}}; faults shaded red{{end}}).
{{retryPolicy .S.Retries}}</p>
<div class="wide"><table id="headline"><thead><tr><th>profile</th><th>offered/s</th><th>of it retries</th><th>goodput/s</th><th>goodput % of capacity</th>
<th>p99 good</th><th>p99 refusals: service / shoppers</th><th>errors (% of offered)</th><th>outage</th><th>recovery</th><th>restarts</th>
<th>oversold</th><th>missing orders</th><th>events lost</th><th>events twice</th><th>stale served</th></tr></thead><tbody>
{{range .Rows}}{{with .Profile}}<tr data-profile="{{.Name}}"><td>{{.Name}}</td><td>{{rps .Headline.OfferedRPS}}</td><td data-key="retry_pct">{{pct .Headline.RetryPct}}</td>
<td>{{rps .Headline.GoodputRPS}}</td><td data-key="goodput_pct">{{pct .Headline.GoodputPct}}</td>
<td data-key="p99_good_ms">{{ms .Headline.P99Good}}</td><td data-key="p99_refusal_ms">{{atMost .Headline.P99RefusalService}} / {{ms .Headline.P99Refusal}}</td><td data-key="error_rate_pct">{{errors .Headline.ErrorRate .Headline.Unavailable}}</td>
<td>{{.Headline.OutageS}} s</td><td>{{recovery .Headline.RecoveryS}}</td><td data-key="restarts">{{restarts .}}</td>
<td data-key="oversold_units">{{.Headline.Oversold}}</td><td data-key="missing_orders">{{.Headline.Missing}}</td>
<td data-key="events_lost">{{.Headline.EventsLost}}</td><td>{{.Headline.EventsTwice}}</td><td>{{.Headline.Stale}}</td></tr>{{end}}{{end}}
</tbody></table></div>
{{range .Rows}}<section><h2>{{.Profile.Name}} <small><code>FIXES={{.Profile.Fixes}}</code></small></h2>
<ul>{{range .Profile.Notes}}<li class="note">⚠ {{.}}</li>{{end}}{{range .Profile.Verdicts}}<li class="{{if .Held}}held{{else}}failed{{end}}">{{if .Held}}✔{{else}}✘{{end}} {{.Claim}} — {{.Seen}}</li>{{end}}
{{if .Profile.Broken}}{{range .Profile.Broken}}<li class="failed">✘ invariant broken: {{.}}</li>{{end}}{{else}}<li class="held">✔ invariants hold</li>{{end}}</ul>
<div class="grid">{{range .Charts}}<figure>{{.SVG}}<figcaption class="legend">{{range .Legend}}<span><i class="sw" style="background:{{.Color}}"></i> {{.Name}}</span> {{end}}</figcaption></figure>{{end}}</div>
{{if .Profile.Events}}<details><summary>Supervisor events ({{len .Profile.Events}})</summary><ul>{{range .Profile.Events}}<li>{{.At.Format "15:04:05.000"}} {{.Service}}: {{.What}} {{.Detail}}</li>{{end}}</ul></details>{{end}}
</section>{{end}}
<script type="application/json" id="summary">{{.JSON}}</script>
</body></html>
`))

// segments are the points of one series, clamped to [floor, ymax] and split
// where a second has no value (NaN or negative: no scrape, the process was
// down), so that the line has a gap there instead of a straight line across.
func segments(pts []Point, value func(Point) float64, floor, ymax float64) []plotter.XYs {
	var segs []plotter.XYs
	var xys plotter.XYs
	for _, pt := range pts {
		v := value(pt)
		if math.IsNaN(v) || v < 0 {
			if len(xys) > 0 {
				segs, xys = append(segs, xys), nil
			}
			continue
		}
		xys = append(xys, plotter.XY{X: float64(pt.T) + 0.5, Y: math.Max(floor, math.Min(v, ymax))})
	}
	if len(xys) > 0 {
		segs = append(segs, xys)
	}
	return segs
}
