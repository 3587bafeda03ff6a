package replay

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stampede-shop/stampede/loadtest/report"
	"github.com/stampede-shop/stampede/loadtest/scenario"
)

// The naive shop's recovery verdict shows the back-off ladder behind it: a
// process started again just before the spike ends serves the cool-down.
func TestNaiveRecoveryVerdictShowsTheRestarts(t *testing.T) {
	sc, err := scenario.Load("promo")
	if err != nil {
		t.Fatal(err)
	}
	from, to := sc.Window()
	timeline := func(restartAt ...int) []report.Point {
		pts := make([]report.Point, secs(sc.Length()))
		for i := range pts {
			pts[i].T = i
			for _, at := range restartAt {
				if i >= secs(from)+at {
					pts[i].Restarts++
				}
			}
		}
		return pts
	}
	recovery := func(pr report.Profile) report.Verdict {
		for _, v := range judge(sc, Profile{Name: "naive"}, pr) {
			if strings.Contains(v.Claim, "still down 10 s after") {
				return v
			}
		}
		t.Fatal("no recovery verdict for the naive shop")
		return report.Verdict{}
	}
	away := report.Profile{Supervised: true, Headline: report.Headline{RecoveryS: -1}, Timeline: timeline(11, 31, 60)}
	v := recovery(away)
	want := "recovery not within the run; restarted 11, 31, 60 s into the spike, which lasted " + strconv.Itoa(secs(to-from)) + " s"
	if !v.Held || v.Seen != want {
		t.Errorf("away past the end: held %v, %q; want held, %q", v.Held, v.Seen, want)
	}
	back := report.Profile{Supervised: true, Headline: report.Headline{RecoveryS: 8}, Timeline: timeline(29, 67)}
	if v := recovery(back); v.Held || !strings.Contains(v.Seen, "recovery 8 s; restarted 29, 67 s into the spike") {
		t.Errorf("started again before the end, back after 8 s: held %v, %q", v.Held, v.Seen)
	}
	if v := recovery(report.Profile{Headline: report.Headline{RecoveryS: -1}}); v.Seen != "recovery not within the run" {
		t.Errorf("no restarts: %q", v.Seen)
	}
}
