package resilience

import (
	"math"
	"runtime"
	"sync"
	"testing"
	"time"
)

// The runtime's own numbers: goroutines that outnumber the Ps wait for one,
// and RuntimeCPUWait sees those waits, counted from its previous call.
func TestRuntimeCPUWaitSeesGoroutinesQueueForAP(t *testing.T) {
	read := RuntimeCPUWait()
	var wg sync.WaitGroup
	stop := time.Now().Add(300 * time.Millisecond)
	for range 8 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for time.Now().Before(stop) { // spin: runnable all the time, preempted every 10 ms
			}
		})
		wg.Go(func() {
			for time.Now().Before(stop) { // wake up often, and queue behind the spinners
				time.Sleep(100 * time.Microsecond)
			}
		})
	}
	wg.Wait()
	p99, n := read()
	if n == 0 || p99 < time.Millisecond {
		t.Fatalf("eight spinning and eight sleeping goroutines per P: p99 wait %v over %d schedulings, want ≥ 1 ms", p99, n)
	}
	if _, again := read(); again >= n {
		t.Fatalf("the second read counted %d schedulings, the first %d: reads must count from the last", again, n)
	}
}

// The p99 is interpolated inside its bucket. With the runtime's buckets near
// 10 ms, (8.4 ms, 10.5 ms], a p99 low in that bucket is under a 10 ms target;
// the bucket's upper bound, 10.5 ms, would be over it.
func TestQuantileInterpolatesInsideTheBucket(t *testing.T) {
	const ms = 0.001
	bounds := []float64{math.Inf(-1), 0, 8.3886 * ms, 10.4858 * ms, 12.5829 * ms, math.Inf(1)}
	for _, tt := range []struct {
		name   string
		counts []uint64
		q      float64
		want   time.Duration
	}{
		{"p99 halfway into the bucket", []uint64{0, 980, 20, 0, 0}, 0.99, 9437 * time.Microsecond}, // 8.3886 + 2.0972 × (990−980)/20
		{"p99 at the bucket's top", []uint64{0, 940, 50, 10, 0}, 0.99, 10486 * time.Microsecond},
		{"p50 in the first bucket", []uint64{0, 100, 0, 0, 0}, 0.5, 4194 * time.Microsecond},
		{"p99 in the last, open bucket: its lower bound", []uint64{0, 90, 0, 0, 10}, 0.99, 12583 * time.Microsecond},
		{"p99 below zero: zero", []uint64{100, 0, 0, 0, 0}, 0.99, 0},
	} {
		var n uint64
		for _, c := range tt.counts {
			n += c
		}
		if got := quantile(bounds, tt.counts, n, tt.q); got.Round(time.Microsecond) != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	if got := quantile(bounds, nil, 0, 0.99); got != 0 {
		t.Fatalf("nothing observed: %v", got)
	}
}
