package replay

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/stampede-shop/stampede/loadtest/scenario"
	"github.com/stampede-shop/stampede/loadtest/stack"
	"github.com/stampede-shop/stampede/pkg/testkit"
)

// machine is a fake shop for the capacity search: it meets the objective up
// to capacity, except that the rates listed in stalls miss it once each, as
// a step does when the machine stalls under it; and the rates above it
// listed in flukes meet it on their second try, as a step the shop misses
// most of the time now and then does.
type machine struct {
	capacity float64
	stalls   map[float64]bool
	flukes   map[float64]bool
	steps    []float64
	tries    []int  // which try the search said each step was
	met      []bool // whether each step met the objective
}

func (m *machine) step(rate float64, try int) (bool, error) {
	m.steps = append(m.steps, rate)
	m.tries = append(m.tries, try)
	ok := rate <= m.capacity && !m.stalls[rate] || m.flukes[rate] && try == 2
	delete(m.stalls, rate)
	m.met = append(m.met, ok)
	return ok, nil
}

func TestSearchCapacity(t *testing.T) {
	for _, tt := range []struct {
		name     string
		capacity float64
		stalls   []float64
		flukes   []float64
		want     float64
		tries    int
	}{
		// 303.75 and 455.6 meet it; 683 misses twice; halfway, 569.5,
		// meets it.
		{"the midpoint meets it", 600, nil, nil, 569.53125, 5},
		{"the midpoint misses it too", 500, nil, nil, 455.625, 6},
		// Without the second try, the stall at 455.6 would have ended the
		// search at the midpoint of 303.75 and 455.6: 380. The second try
		// meets it, so a third decides.
		{"a stall does not sink the step", 600, []float64{455.625}, nil, 569.53125, 7},
		{"a stall at the midpoint", 600, []float64{569.53125}, nil, 569.53125, 7},
		{"a stall at the first step", 600, []float64{303.75}, nil, 569.53125, 7},
		// 683 misses, meets it by luck, and misses the third time: without
		// the third, the capacity would have been 683, after 1,025 and 854
		// had missed twice each.
		{"a fluke does not raise the capacity", 600, nil, []float64{683.4375}, 569.53125, 6},
		{"a fluke at the midpoint", 700, nil, []float64{854.296875}, 683.4375, 8},
		// A shop slower than the first step: 303.75 misses twice, 202.5
		// meets it, and halfway (253) too — what the search begun at 135/s
		// found, in a step fewer.
		{"a slow shop, found below the first step", 260, nil, nil, 253.125, 4},
		{"the midpoint below the first step misses", 250, nil, nil, 202.5, 5},
		// Slower still, down the grid: 135 misses twice, 90 meets it, and
		// halfway (112.5) too — what the search begun at 40/s found.
		{"a very slow shop", 120, nil, nil, 112.5, 8},
		{"slower still", 70, nil, nil, 60, 11},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := &machine{capacity: tt.capacity, stalls: map[float64]bool{}, flukes: map[float64]bool{}}
			for _, r := range tt.stalls {
				m.stalls[r] = true
			}
			for _, r := range tt.flukes {
				m.flukes[r] = true
			}
			var pausedAfter []int // the steps a pause followed
			got, err := searchCapacity(m.step, func() { pausedAfter = append(pausedAfter, len(m.steps)-1) })
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || len(m.steps) != tt.tries {
				t.Fatalf("capacity %v after steps %v; want %v after %d steps", got, m.steps, tt.want, tt.tries)
			}
			// A pause follows every step that missed (its queues drain),
			// and no other.
			var missed []int
			for i, ok := range m.met[:len(m.met)-1] {
				if !ok {
					missed = append(missed, i)
				}
			}
			if fmt.Sprint(pausedAfter) != fmt.Sprint(missed) {
				t.Errorf("paused after steps %v of %v, want after the misses %v", pausedAfter, m.steps, missed)
			}
			// A step's try counts the steps at its rate in a row (the
			// progress line marks the second and the third).
			for i, try := range m.tries {
				want := 1
				if i > 0 && m.steps[i] == m.steps[i-1] {
					want = m.tries[i-1] + 1
				}
				if try != want {
					t.Errorf("steps %v called tries %v; want try %d at step %d", m.steps, m.tries, want, i)
					break
				}
			}
		})
	}
}

func TestSearchCapacityGivesUp(t *testing.T) {
	t.Run("a shop that never meets it", func(t *testing.T) {
		m := &machine{capacity: 10}
		if _, err := searchCapacity(m.step, func() {}); err == nil || fmt.Sprint(m.steps) != "[303.75 303.75 202.5 202.5 135 135 90 90 60 60 40 40]" {
			t.Fatalf("got %v after steps %v; want an error after two tries at each rate down to 40/s", err, m.steps)
		}
	})
	t.Run("an error ends the search", func(t *testing.T) {
		stop := errors.New("interrupted")
		n := 0
		_, err := searchCapacity(func(float64, int) (bool, error) {
			if n++; n == 3 {
				return false, stop
			}
			return true, nil
		}, func() {})
		if !errors.Is(err, stop) || n != 3 {
			t.Fatalf("got %v after %d steps; want the step's error after 3", err, n)
		}
	})
}

// On a running shop the calibration leaves the hot SKU alone: its stock is
// the promotion's, and the shop keeps what is sold. On the replay's own shop,
// thrown away after, it offers the normal mix as it is.
func TestCalibrationSparesARunningShopsHotSKU(t *testing.T) {
	promo, err := scenario.Load("promo")
	if err != nil {
		t.Fatal(err)
	}
	normal := promo.Mix
	if normal[scenario.OrderHot] == 0 {
		t.Fatal("promo's normal mix orders no hot SKU: nothing to test")
	}
	if got := calibrationMix(Options{Scenario: promo}); !maps.Equal(got, normal) {
		t.Errorf("own shop: calibration mix %v, want the normal mix %v", got, normal)
	}
	got := calibrationMix(Options{Scenario: promo, Target: &stack.Remote{}})
	if got[scenario.OrderHot] != 0 {
		t.Errorf("running shop: calibration orders the hot SKU (weight %v)", got[scenario.OrderHot])
	}
	if want := normal[scenario.OrderOther] + normal[scenario.OrderHot]; got[scenario.OrderOther] != want {
		t.Errorf("running shop: other SKUs weigh %v, want %v (the hot SKU's orders go to them)", got[scenario.OrderOther], want)
	}
	if len(got) != len(normal)-1 {
		t.Errorf("running shop: mix %v from %v (the normal mix changed, or more than the hot SKU moved)", got, normal)
	}
}

// The capacity is measured without the CPU cap, on by default and set here
// by the environment for the runs: the order service of the calibration's
// shop has no CPU target, and the same shop without the override has the
// environment's.
func TestCalibrationMeasuresTheShopWithoutTheCPUCap(t *testing.T) {
	t.Setenv("SHED_TARGET_CPU_WAIT", "2ms")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bins := services(t)
	calibration := calibrationProfile()
	for _, c := range []struct {
		env  map[string]string
		want float64 // µs
	}{{calibration.Env, 0}, {nil, 2000}} {
		r := func() testkit.Response {
			native, err := stack.StartNative(ctx, testDeps(), bins, stack.Options{Fixes: calibration.Fixes, Env: c.env,
				Products: 100, LogDir: t.TempDir(), Probe: stack.KubeletProbe})
			if err != nil {
				t.Fatal(err)
			}
			defer native.Close()
			return testkit.Do(t, "GET", native.API("order")+"/readyz", "", nil)
		}()
		info, _ := r.Body["info"].(map[string]any)
		load, _ := info["load"].(map[string]any)
		if got, ok := load["cpu_wait_target_us"].(float64); r.Status != 200 || !ok || got != c.want {
			t.Fatalf("env %v: readyz %d %s; want cpu_wait_target_us %v", c.env, r.Status, r.Raw, c.want)
		}
	}
}
