package election

import (
	"errors"
	"log/slog"
	"testing"
	"time"
)

// TestLoadRetriesUntilLoaded: Load waits for the previous election's unloading, retries a
// failing load (each failure reported as a warning with the wait before the next try), and
// stops at the first success.
func TestLoadRetriesUntilLoaded(t *testing.T) {
	after := make(chan struct{})
	calls := 0
	var waits []time.Duration
	var levels []slog.Level
	done := make(chan struct{})
	go func() {
		defer close(done)
		Load(after, nil, nil, func() error {
			calls++
			if calls < 3 {
				return errors.New("not there yet")
			}
			return nil
		}, func(_ error, retryIn time.Duration, level slog.Level) {
			waits, levels = append(waits, retryIn), append(levels, level)
		})
	}()
	time.Sleep(50 * time.Millisecond)
	if calls != 0 {
		t.Fatal("loaded before the previous election was unloaded")
	}
	close(after)
	<-done
	if calls != 3 || len(waits) != 2 || waits[0] != RetryMin || waits[1] != 2*RetryMin ||
		levels[0] != slog.LevelWarn || levels[1] != slog.LevelWarn {
		t.Fatalf("calls %d, waits %v, levels %v", calls, waits, levels)
	}
}

// TestLoadStops: ErrEnded ends the loading at once; so does the election ending (done) or the
// coordinator stopping while Load waits.
func TestLoadStops(t *testing.T) {
	calls := 0
	Load(nil, nil, nil, func() error { calls++; return ErrEnded }, func(error, time.Duration, slog.Level) {
		t.Fatal("ErrEnded reported as a failure")
	})
	if calls != 1 {
		t.Fatalf("%d calls after ErrEnded", calls)
	}
	for _, which := range []string{"done", "stop"} {
		done, stop := make(chan struct{}), make(chan struct{})
		ch := map[string]chan struct{}{"done": done, "stop": stop}[which]
		returned := make(chan struct{})
		calls := 0
		go func() {
			defer close(returned)
			Load(nil, done, stop, func() error { calls++; return errors.New("fails") }, func(error, time.Duration, slog.Level) {})
		}()
		time.Sleep(30 * time.Millisecond) // in its first wait
		close(ch)
		select {
		case <-returned:
		case <-time.After(time.Second):
			t.Fatalf("Load did not return when %s closed", which)
		}
		if calls != 1 {
			t.Fatalf("%s: %d calls", which, calls)
		}
	}
}
