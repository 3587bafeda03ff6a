// Package stack runs the shop for the replay: the three services built from
// this checkout and started as child processes against the local Postgres,
// Redis and NATS, each supervised as a kubelet would supervise its pod, with
// an in-process Toxiproxy between the services and the dependencies the
// scenarios break.
package stack

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Probe is how the supervisor probes liveness and what it does about it: the
// kubelet's livenessProbe fields, with the kubelet's defaults for a pod that
// sets periodSeconds: 2.
type Probe struct {
	Path             string        // /livez
	InitialDelay     time.Duration // before the first probe after a start
	Period           time.Duration // 2s
	Timeout          time.Duration // 1s, the kubelet's default timeoutSeconds
	FailureThreshold int           // 3 failures in a row → kill
	Grace            time.Duration // terminationGracePeriodSeconds: SIGTERM, then SIGKILL
	// Backoff is the wait before the n-th restart (n ≥ 1).
	Backoff func(n int) time.Duration
}

// KubeletProbe is the supervision the replay applies to every service: a
// livenessProbe with periodSeconds 2 and the kubelet's defaults otherwise
// (timeoutSeconds 1, failureThreshold 3), terminationGracePeriodSeconds 10,
// and the kubelet's CrashLoopBackOff: 10 s before the first restart,
// doubling, at most five minutes.
var KubeletProbe = Probe{
	Path: "/livez", InitialDelay: 2 * time.Second, Period: 2 * time.Second, Timeout: time.Second,
	FailureThreshold: 3, Grace: 10 * time.Second,
	Backoff: func(n int) time.Duration { return min(10*time.Second<<max(n-1, 0), 5*time.Minute) },
}

// Event is something the supervisor did or saw.
type Event struct {
	At      time.Time
	Service string
	What    string // "started", "liveness failed", "killed", "exited", "restarting"
	Detail  string
}

// Process is a service running as a child process under supervision.
type Process struct {
	Name  string
	Bin   string
	Args  []string
	Env   []string
	API   string // base URL of the API listener, for probes
	Log   io.Writer
	Probe Probe
	// OnEvent, if set, hears of every start, kill and exit.
	OnEvent func(Event)

	restarts atomic.Int32
	up       atomic.Bool
	done     chan struct{}
	stop     context.CancelFunc
	mu       sync.Mutex
	cmd      *exec.Cmd
}

// Restarts is how many times the process was started again.
func (p *Process) Restarts() int { return int(p.restarts.Load()) }

// Up reports whether the process is running now.
func (p *Process) Up() bool { return p.up.Load() }

// Start starts the process and its supervisor; Stop ends both.
func (p *Process) Start(ctx context.Context) {
	ctx, p.stop = context.WithCancel(ctx)
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		p.supervise(ctx)
	}()
}

// Stop sends SIGTERM, waits up to the grace period, then kills, and returns
// once the process is gone. It does not restart it.
func (p *Process) Stop() {
	p.stop()
	<-p.done
}

func (p *Process) emit(what, detail string) {
	if p.OnEvent != nil {
		p.OnEvent(Event{At: time.Now(), Service: p.Name, What: what, Detail: detail})
	}
}

func (p *Process) supervise(ctx context.Context) {
	for n := 0; ; n++ {
		if n > 0 {
			wait := p.Probe.Backoff(n)
			p.restarts.Add(1)
			p.emit("restarting", fmt.Sprintf("restart %d after %v", n, wait))
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		// Not bound to ctx: the supervisor ends the process the kubelet's
		// way (SIGTERM, grace, SIGKILL), not with an immediate kill.
		cmd := exec.CommandContext(context.WithoutCancel(ctx), p.Bin, p.Args...)
		cmd.Env = p.Env
		cmd.Stdout, cmd.Stderr = p.Log, p.Log
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the replay
		if err := cmd.Start(); err != nil {
			p.emit("failed to start", err.Error())
			continue
		}
		p.mu.Lock()
		p.cmd = cmd
		p.mu.Unlock()
		p.up.Store(true)
		p.emit("started", fmt.Sprintf("pid %d", cmd.Process.Pid))
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()

		reason := p.watch(ctx, exited)
		p.up.Store(false)
		if ctx.Err() != nil {
			return
		}
		p.emit("exited", reason)
	}
}

// watch probes liveness until the process exits, is killed for failing its
// probe, or ctx ends (then it is stopped, SIGTERM first).
func (p *Process) watch(ctx context.Context, exited chan error) string {
	probe := time.NewTimer(p.Probe.InitialDelay)
	defer probe.Stop()
	failures := 0
	for {
		select {
		case err := <-exited:
			return fmt.Sprintf("exit: %v", err)
		case <-ctx.Done():
			p.terminate(exited)
			return "stopped"
		case <-probe.C:
			err := p.live(ctx)
			if ctx.Err() != nil { // stopped while probing: not the process's failure
				p.terminate(exited)
				return "stopped"
			}
			if err != nil {
				failures++
				p.emit("liveness failed", fmt.Sprintf("%d/%d: %v", failures, p.Probe.FailureThreshold, err))
				if failures >= p.Probe.FailureThreshold {
					p.emit("killed", "liveness probe failed; SIGTERM")
					return "killed: " + p.terminate(exited)
				}
			} else {
				failures = 0
			}
			probe.Reset(p.Probe.Period)
		}
	}
}

// terminate is the kubelet's kill: SIGTERM, the grace period, SIGKILL.
func (p *Process) terminate(exited chan error) string {
	p.mu.Lock()
	proc := p.cmd.Process
	p.mu.Unlock()
	_ = proc.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		return fmt.Sprintf("exited on SIGTERM (%v)", err)
	case <-time.After(p.Probe.Grace):
		_ = proc.Kill()
		return fmt.Sprintf("SIGKILL after the grace period (%v)", <-exited)
	}
}

var probeClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

func (p *Process) live(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.Probe.Timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.API+p.Probe.Path, nil)
	resp, err := probeClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// logFile opens a service's log file in dir.
func logFile(dir, name string) (*os.File, error) {
	return os.OpenFile(dir+"/"+name+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}
