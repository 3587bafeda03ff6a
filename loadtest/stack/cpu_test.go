package stack

import (
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	busy, idle, err := parseProcStat(strings.NewReader(
		"cpu  100 5 50 1000 20 3 2 7 40 0\ncpu0 50 2 25 500 10 1 1 3 20 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	// user+nice+system+irq+softirq+steal; idle+iowait; guest is inside user.
	if busy != 100+5+50+3+2+7 || idle != 1000+20 {
		t.Fatalf("busy %d idle %d, want 167 and 1020", busy, idle)
	}
	if _, _, err := parseProcStat(strings.NewReader("intr 1 2 3\n")); err == nil {
		t.Fatal("a file without the cpu line was read")
	}
}

func TestParsePressure(t *testing.T) {
	waited, err := parsePressure(strings.NewReader(
		"some avg10=6.68 avg60=44.31 avg300=53.31 total=875595491\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if waited != 875595491*time.Microsecond {
		t.Fatalf("waited %v", waited)
	}
	if _, err := parsePressure(strings.NewReader("full avg10=0.00 total=12\n")); err == nil {
		t.Fatal("a file without the some line was read")
	}
}

func TestSinceIsAShareOfTheInterval(t *testing.T) {
	was := CPUTimes{At: time.Unix(100, 0), Busy: 1000, Idle: 3000, Waited: time.Second, Known: true, PSIs: true}
	now := CPUTimes{At: time.Unix(102, 0), Busy: 1300, Idle: 3100, Waited: 1500 * time.Millisecond, Known: true, PSIs: true}
	busy, waiting := now.Since(was)
	if busy != 75 || waiting != 25 {
		t.Fatalf("busy %v%% waiting %v%%, want 75 and 25", busy, waiting)
	}
	busy, waiting = now.Since(CPUTimes{At: time.Unix(100, 0)}) // nothing read before
	if !math.IsNaN(busy) || !math.IsNaN(waiting) {
		t.Fatalf("shares of unread counters: %v, %v; want NaN", busy, waiting)
	}
}

// On Linux the counters are real: burning a CPU for a while moves them.
func TestReadCPUOnThisMachine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	was := ReadCPU()
	if !was.Known {
		t.Fatal("/proc/stat not read")
	}
	spins := 0
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); spins++ {
		runtime.Gosched() // busy, but polite to the other tests' goroutines
	}
	now := ReadCPU()
	busy, waiting := now.Since(was)
	if !(busy > 0 && busy <= 100) {
		t.Fatalf("busy %v%% while this test burned a CPU (%d spins)", busy, spins)
	}
	if now.PSIs && !(waiting >= 0 && waiting <= 100) {
		t.Fatalf("waiting %v%%", waiting)
	}
}

// The report names the CPU where Linux tells it: the first "model name", its
// spaces folded; nothing where the kernel has no such line.
func TestCPUModelIsTheFirstModelName(t *testing.T) {
	for _, tc := range []struct{ name, cpuinfo, want string }{
		{"x86", "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC  7B13 64-Core Processor\n\nprocessor\t: 1\nmodel name\t: other\n", "AMD EPYC 7B13 64-Core Processor"},
		{"no model", "processor\t: 0\nBogoMIPS\t: 50.00\nCPU part\t: 0xd0c\n", ""},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cpuModel(strings.NewReader(tc.cpuinfo)); got != tc.want {
				t.Fatalf("cpuModel = %q, want %q", got, tc.want)
			}
		})
	}
}

// On this machine the name has the system, the CPUs and the Go version.
func TestMachineNamesSystemCPUsAndGo(t *testing.T) {
	m := Machine()
	for _, want := range []string{runtime.GOOS + "/" + runtime.GOARCH + ", ", fmt.Sprintf(", %d ", runtime.NumCPU()), ", " + runtime.Version()} {
		if !strings.Contains(m, want) {
			t.Errorf("Machine() = %q, want it to say %q", m, want)
		}
	}
}
