// Package procs adapts GOMAXPROCS to Sluice's load: one P while Sluice's
// own CPU use fits comfortably in one core, the runtime's default as soon as
// it does not.
//
// Why: at low load each call through the gateway is a chain of hand-offs
// between goroutines (the HTTP server reads a request, the upstream answer
// wakes the waiting handler, net/http's background reader is started and
// stopped). With idle Ps, every such wake-up also wakes a second thread
// that spins looking for work and goes back to sleep, and every system call
// wakes the sysmon thread; on a small machine that overhead is a quarter of
// Sluice's CPU per call. With a single P the hand-offs stay on one thread.
// Under load the extra Ps are needed for throughput, so Adapt gives them
// back as soon as Sluice's CPU use nears one core.
package procs

import (
	"context"
	"os"
	"runtime"
	"sync/atomic"
	"time"
)

// Config tunes [Adapt]; the zero value means the defaults.
type Config struct {
	// Interval is how often CPU use is sampled (default 50ms).
	Interval time.Duration
	// Up is the CPU use, in cores, at which a single P is deemed too few
	// (default 0.85), once it has stayed there for UpAfter (default
	// 250ms): a garbage collection or a burst of calls fills a core for a
	// few milliseconds without the load needing a second one, and more Ps
	// than the load needs cost CPU on every call (at 16 clients, about a
	// sixth more per call on a 2-core machine).
	Up      float64
	UpAfter time.Duration
	// Down is the CPU use, in cores, under which the default number of Ps
	// is deemed too many (default 0.5), once it has stayed there for
	// DownAfter (default 2s). Down is well under Up, and measured with more
	// Ps (which spend more CPU on the same work), so that a steady load
	// does not flip between the two.
	Down      float64
	DownAfter time.Duration

	// cpu returns the process's CPU time so far; set by tests.
	cpu func() (time.Duration, bool)
	// set applies a number of Ps (0: the runtime's default) and returns the
	// number in force; set by tests.
	set func(n int) int
}

func (c *Config) defaults() {
	if c.Interval <= 0 {
		c.Interval = 50 * time.Millisecond
	}
	if c.Up <= 0 {
		c.Up = 0.85
	}
	if c.UpAfter <= 0 {
		c.UpAfter = 250 * time.Millisecond
	}
	if c.Down <= 0 {
		c.Down = 0.5
	}
	if c.DownAfter <= 0 {
		c.DownAfter = 2 * time.Second
	}
	if c.cpu == nil {
		c.cpu = processCPU
	}
	if c.set == nil {
		c.set = setProcs
	}
}

func setProcs(n int) int {
	if n <= 0 {
		runtime.SetDefaultGOMAXPROCS()
	} else {
		runtime.GOMAXPROCS(n)
	}
	return runtime.GOMAXPROCS(0)
}

// Enabled reports whether Adapt would do anything in this process: not when
// the operator fixed GOMAXPROCS in the environment, nor when the runtime's
// default is one P anyway, nor where the process's CPU time is unknown.
func Enabled() bool {
	if os.Getenv("GOMAXPROCS") != "" || runtime.GOMAXPROCS(0) <= 1 {
		return false
	}
	_, ok := processCPU()
	return ok
}

// running keeps a second Adapt in the same process (tests run several
// gateways) from fighting the first over a process-wide setting.
var running atomic.Bool

// Adapt runs until ctx ends, then restores the runtime's default. It
// starts with one P, since a gateway that has just started is idle. Call it
// only when [Enabled] reports true; while one Adapt runs, another returns at
// once.
func Adapt(ctx context.Context, cfg Config) {
	if !running.CompareAndSwap(false, true) {
		return
	}
	defer running.Store(false)
	cfg.defaults()
	t := newTuner(cfg)
	cfg.set(1)
	defer cfg.set(0)
	timer := time.NewTimer(cfg.Interval)
	defer timer.Stop()
	lastCPU, _ := cfg.cpu()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-timer.C:
			cpu, ok := cfg.cpu()
			if !ok {
				return
			}
			next := cfg.Interval
			if wall := now.Sub(last); wall > 0 {
				used := float64(cpu-lastCPU) / float64(wall)
				lastCPU, last = cpu, now
				if n, change := t.step(used, wall); change {
					cfg.set(n)
				}
				if t.one && used < idleUse {
					// An idle gateway (a laptop running sluice stdio)
					// should not wake twenty times a second.
					next = idleInterval * cfg.Interval
				}
			}
			timer.Reset(next)
		}
	}
}

// An idle process (under idleUse of a core) is sampled idleInterval times
// less often.
const (
	idleUse      = 0.02
	idleInterval = 10
)

// tuner decides; it holds no clock of its own, so that tests can drive it.
type tuner struct {
	cfg  Config
	one  bool          // running with a single P
	busy time.Duration // how long use has been at Up or above with one P
	calm time.Duration // how long use has been under Down with the default
}

func newTuner(cfg Config) *tuner { return &tuner{cfg: cfg, one: true} }

// step takes the CPU use (in cores) over the last interval of length d and
// says whether to switch, and to what: 1, or 0 for the runtime's default.
func (t *tuner) step(used float64, d time.Duration) (n int, change bool) {
	if t.one {
		if used < t.cfg.Up {
			t.busy = 0
			return 1, false
		}
		t.busy += d
		if t.busy >= t.cfg.UpAfter {
			t.one, t.busy, t.calm = false, 0, 0
			return 0, true
		}
		return 1, false
	}
	if used >= t.cfg.Down {
		t.calm = 0
		return 0, false
	}
	t.calm += d
	if t.calm >= t.cfg.DownAfter {
		t.one, t.calm = true, 0
		return 1, true
	}
	return 0, false
}
