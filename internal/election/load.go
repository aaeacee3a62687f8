// Package election holds what the group and transaction coordinators share about the
// partitions they serve as leaders (coordinator/ownership.go, coordinator/txn/ownership.go):
// the leader epochs and elections of their partitions, with the rules that order them
// (table.go), and loading an elected partition, with retries, until it is loaded or the
// election ends. It knows nothing of groups, transactional ids, logs or Kafka error codes:
// the coordinator loads, installs and unloads its items through the hooks of Config.
package election

import (
	"errors"
	"log/slog"
	"time"
)

// ErrEnded is what a load returns when the election it loads was superseded or resigned.
var ErrEnded = errors.New("election ended")

// Waits between attempts to load an elected partition whose load failed (its log is not
// there yet, an I/O error); the partition answers COORDINATOR_LOAD_IN_PROGRESS meanwhile.
const (
	RetryMin = 100 * time.Millisecond
	RetryMax = 5 * time.Second
)

// Load loads an elected partition. It first waits for after (the previous election's
// unloading; nil when there is none), then calls load until it returns nil or ErrEnded,
// waiting RetryMin, doubling up to RetryMax, after each failure. failed reports each failure
// with the level to log it at: the first tries often meet a partition still being set up
// (just created, or its log not open yet here), so a warning, and an error once the wait is
// at its longest. Load returns early once done (the election ended) or stop (the coordinator
// stops) is closed.
func Load(after, done, stop <-chan struct{}, load func() error, failed func(err error, retryIn time.Duration, level slog.Level)) {
	if after != nil {
		select {
		case <-after:
		case <-done:
			return
		case <-stop:
			return
		}
	}
	for wait := RetryMin; ; wait = min(2*wait, RetryMax) {
		err := load()
		if err == nil || errors.Is(err, ErrEnded) {
			return
		}
		level := slog.LevelWarn
		if wait >= RetryMax {
			level = slog.LevelError
		}
		failed(err, wait, level)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-done:
			t.Stop()
			return
		case <-stop:
			t.Stop()
			return
		}
	}
}
