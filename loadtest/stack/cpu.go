package stack

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Machine names this machine for a report: the system, the CPUs (with their
// model, where Linux tells it) and the Go that built the replay, as in
// "linux/amd64, 2 × AMD EPYC 7B13 64-Core Processor, go1.26.8". A capacity,
// and every number measured against it, holds on the machine it was
// measured on; two reports can only be compared if they say which.
func Machine() string {
	cpus := fmt.Sprintf("%d CPUs", runtime.NumCPU())
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		if model := cpuModel(f); model != "" {
			cpus = fmt.Sprintf("%d × %s", runtime.NumCPU(), model)
		}
		f.Close()
	}
	return fmt.Sprintf("%s/%s, %s, %s", runtime.GOOS, runtime.GOARCH, cpus, runtime.Version())
}

// cpuModel reads the first CPU's model name from a /proc/cpuinfo; "" where
// it has none (some ARM kernels).
func cpuModel(r io.Reader) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return ""
}

// CPUTimes are the machine's cumulative CPU counters at one moment, as Linux
// keeps them: how long the CPUs were busy and idle (/proc/stat), and how
// long at least one runnable task waited for a CPU (/proc/pressure/cpu, the
// "some" line of pressure stall information). Known says which were read:
// other systems, and kernels without PSI, have none or only the first.
type CPUTimes struct {
	At          time.Time
	Busy, Idle  uint64 // clock ticks, all CPUs together
	Waited      time.Duration
	Known, PSIs bool
}

// ReadCPU reads the machine's CPU counters now.
func ReadCPU() CPUTimes {
	t := CPUTimes{At: time.Now()}
	if f, err := os.Open("/proc/stat"); err == nil {
		t.Busy, t.Idle, err = parseProcStat(f)
		t.Known = err == nil
		f.Close()
	}
	if f, err := os.Open("/proc/pressure/cpu"); err == nil {
		var err error
		t.Waited, err = parsePressure(f)
		t.PSIs = err == nil
		f.Close()
	}
	return t
}

// Since returns, for the time between was and t, the share of CPU time that
// was busy and the share of wall time during which some task was runnable
// but had no CPU, both in percent. A share that was not read is NaN.
func (t CPUTimes) Since(was CPUTimes) (busyPct, waitingPct float64) {
	busyPct, waitingPct = math.NaN(), math.NaN()
	if t.Known && was.Known && t.Busy+t.Idle > was.Busy+was.Idle {
		busyPct = 100 * float64(t.Busy-was.Busy) / float64(t.Busy+t.Idle-was.Busy-was.Idle)
	}
	if wall := t.At.Sub(was.At); t.PSIs && was.PSIs && wall > 0 {
		waitingPct = min(100, 100*float64(t.Waited-was.Waited)/float64(wall))
	}
	return busyPct, waitingPct
}

// parseProcStat reads the first line of /proc/stat ("cpu  user nice system
// idle iowait irq softirq steal guest guest_nice", in clock ticks). Idle is
// idle and iowait; busy is the rest up to steal (a virtual machine's CPU
// that the hypervisor gave to another is not ours either). Guest time is
// already counted in user and nice.
func parseProcStat(r io.Reader) (busy, idle uint64, err error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && line == "" {
		return 0, 0, err
	}
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	for i, s := range f[1:min(len(f), 9)] { // up to steal
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
		if i == 3 || i == 4 {
			idle += v
		} else {
			busy += v
		}
	}
	return busy, idle, nil
}

// parsePressure reads the cumulative "some" stall time of /proc/pressure/cpu
// ("some avg10=… avg60=… avg300=… total=<µs>").
func parsePressure(r io.Reader) (time.Duration, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "some" {
			continue
		}
		for _, kv := range f[1:] {
			if v, ok := strings.CutPrefix(kv, "total="); ok {
				us, err := strconv.ParseUint(v, 10, 63)
				if err != nil {
					return 0, fmt.Errorf("/proc/pressure/cpu: %w", err)
				}
				return time.Duration(us) * time.Microsecond, nil // #nosec G115 -- parsed into 63 bits
			}
		}
	}
	return 0, fmt.Errorf("/proc/pressure/cpu: no \"some … total=\" line")
}
