package resilience

import (
	"math"
	"runtime/metrics"
	"slices"
	"sync"
	"time"
)

// CPUWaitSource reports how long the goroutines that became runnable since
// the last call waited for a CPU: the 99th percentile, and how many there
// were. The Shedder calls it at most every cpuWindow, from any goroutine.
type CPUWaitSource func() (p99 time.Duration, n uint64)

// RuntimeCPUWait returns a CPUWaitSource that reads this process's Go
// scheduler latency (runtime/metrics' /sched/latencies:seconds: from a
// goroutine becoming runnable to it running). It grows when the process has
// more runnable goroutines than Ps, and when the kernel gives the process's
// threads no CPU because the machine is saturated — the two waits that no
// handler's clock sees, because they come before it starts.
func RuntimeCPUWait() CPUWaitSource {
	sample := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	read := func() *metrics.Float64Histogram {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindFloat64Histogram {
			return nil // not in this Go version: nothing is known
		}
		return sample[0].Value.Float64Histogram() // Counts[i] fell in [Buckets[i], Buckets[i+1])
	}
	var (
		mu   sync.Mutex
		prev []uint64
	)
	if h := read(); h != nil { // the first window starts now, not at the process's start
		prev = slices.Clone(h.Counts)
	}
	return func() (time.Duration, uint64) {
		mu.Lock()
		defer mu.Unlock()
		h := read()
		if h == nil {
			return 0, 0
		}
		delta := make([]uint64, len(h.Counts))
		var n uint64
		for i, c := range h.Counts {
			if i < len(prev) {
				delta[i] = c - prev[i]
			} else {
				delta[i] = c
			}
			n += delta[i]
		}
		prev = append(prev[:0], h.Counts...)
		return quantile(h.Buckets, delta, n, 0.99), n
	}
}

// quantile estimates the q-quantile of n observations from a histogram, as
// Prometheus' histogram_quantile does: it finds the bucket that holds the
// rank and interpolates linearly inside it. The bucket's upper bound alone
// moves in steps of a bucket — the runtime's bucket near 10 ms runs from 8.4
// to 10.5 ms — and a CPUWait of 10 ms would act as one of 8.4 ms: any p99
// over 8.4 ms would read 10.5 ms.
func quantile(bounds []float64, counts []uint64, n uint64, q float64) time.Duration {
	if n == 0 {
		return 0
	}
	rank := q * float64(n)
	var below float64 // observations in the buckets before this one
	for i, c := range counts {
		if c == 0 || below+float64(c) < rank {
			below += float64(c)
			continue
		}
		lo, hi := bounds[i], bounds[i+1]
		switch {
		case math.IsInf(lo, -1):
			return seconds(hi)
		case math.IsInf(hi, 1):
			return seconds(lo)
		}
		return seconds(lo + (hi-lo)*(rank-below)/float64(c))
	}
	return 0
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
