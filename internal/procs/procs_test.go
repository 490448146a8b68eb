package procs

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestTunerStep(t *testing.T) {
	cfg := Config{Interval: 50 * time.Millisecond, Up: 0.7, UpAfter: 100 * time.Millisecond, Down: 0.4, DownAfter: 200 * time.Millisecond}
	type step struct {
		used   float64
		n      int
		change bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"idle stays on one P", []step{{0, 1, false}, {0.3, 1, false}, {0.69, 1, false}}},
		{"a busy core scales up once it stays busy", []step{{0.1, 1, false}, {0.7, 1, false}, {0.8, 0, true}, {1.5, 0, false}}},
		{"a burst does not scale up", []step{{0.9, 1, false}, {0.3, 1, false}, {0.9, 1, false}, {0.2, 1, false}, {0.95, 1, false}}},
		{"back to one P only after a calm spell", []step{
			{0.9, 1, false}, {0.9, 0, true}, {0.3, 0, false}, {0.3, 0, false}, {0.3, 0, false}, {0.3, 1, true},
		}},
		{"a busy interval restarts the calm spell", []step{
			{0.9, 1, false}, {0.9, 0, true}, {0.3, 0, false}, {0.3, 0, false}, {0.5, 0, false},
			{0.3, 0, false}, {0.3, 0, false}, {0.3, 0, false}, {0.3, 1, true},
		}},
		{"use between the thresholds keeps the default", []step{{0.9, 1, false}, {0.9, 0, true}, {0.5, 0, false}, {0.5, 0, false}, {0.5, 0, false}, {0.5, 0, false}, {0.5, 0, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tu := newTuner(cfg)
			var got []step
			for _, s := range tt.steps {
				n, change := tu.step(s.used, cfg.Interval)
				got = append(got, step{s.used, n, change})
			}
			if diff := cmp.Diff(tt.steps, got, cmp.AllowUnexported(step{})); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAdapt drives Adapt with a CPU clock the test controls: one P at the
// start, the default under load, one P again when calm, the default restored
// at the end.
func TestAdapt(t *testing.T) {
	var (
		mu       sync.Mutex
		cpu      time.Duration
		settings []int
		changed  = make(chan int, 16)
	)
	cfg := Config{
		Interval:  10 * time.Millisecond,
		UpAfter:   30 * time.Millisecond,
		DownAfter: 30 * time.Millisecond,
		cpu: func() (time.Duration, bool) {
			mu.Lock()
			defer mu.Unlock()
			return cpu, true
		},
		set: func(n int) int {
			mu.Lock()
			settings = append(settings, n)
			mu.Unlock()
			changed <- n
			return n
		},
	}
	// burn makes the fake process use the given cores from now on.
	var rate float64
	var stop = make(chan struct{})
	go func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				mu.Lock()
				cpu += time.Duration(rate * float64(now.Sub(last)))
				mu.Unlock()
				last = now
			}
		}
	}()
	defer close(stop)
	setRate := func(r float64) { mu.Lock(); rate = r; mu.Unlock() }

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Adapt(ctx, cfg); close(done) }()
	want := func(n int) {
		t.Helper()
		select {
		case got := <-changed:
			if got != n {
				t.Fatalf("GOMAXPROCS set to %d, want %d", got, n)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("GOMAXPROCS not set to %d within 5s", n)
		}
	}
	want(1)
	setRate(1.5)
	want(0)
	setRate(0.05)
	want(1)
	cancel()
	<-done
	want(0)
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]int{1, 0, 1, 0}, settings); diff != "" {
		t.Errorf("settings (-want +got):\n%s", diff)
	}
}

func TestAdaptRunsOnce(t *testing.T) {
	calls := 0
	cfg := Config{cpu: func() (time.Duration, bool) { return 0, true }, set: func(n int) int { calls++; return n }}
	running.Store(true)
	defer running.Store(false)
	Adapt(context.Background(), cfg) // returns at once: another Adapt is running
	if calls != 0 {
		t.Errorf("a second Adapt changed GOMAXPROCS %d times", calls)
	}
}
