package resilience

import (
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

func TestQuantileIsTheBucketsUpperBound(t *testing.T) {
	bounds := []float64{0, 0.001, 0.002, 0.004}
	counts := []uint64{90, 9, 1}
	if got := quantile(bounds, counts, 100, 0.99); got != 2*time.Millisecond {
		t.Fatalf("p99 %v, want 2ms (the 99th of 100 falls in the second bucket)", got)
	}
	if got := quantile(bounds, counts, 100, 0.5); got != time.Millisecond {
		t.Fatalf("p50 %v, want 1ms", got)
	}
	if got := quantile(bounds, nil, 0, 0.99); got != 0 {
		t.Fatalf("nothing observed: %v", got)
	}
}
