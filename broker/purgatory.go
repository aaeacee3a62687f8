package broker

import (
	"context"
	"sync"
	"time"
)

// delayedFetch is a fetch parked until data arrives on one of its partitions, its wait
// expires, or the broker stops. notify may be called many times from any goroutine.
type delayedFetch struct {
	wake chan struct{} // capacity 1
}

func (d *delayedFetch) notify() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// purgatory tracks parked fetches so that Close can answer them.
type purgatory struct {
	mu      sync.Mutex
	stopped chan struct{}
	closed  bool
}

func newPurgatory() *purgatory { return &purgatory{stopped: make(chan struct{})} }

func (q *purgatory) closeAll() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.stopped)
	}
}

// wait blocks until woken, the deadline passes or the purgatory closes; it reports whether
// it was woken (more data may be there).
func (q *purgatory) wait(d *delayedFetch, deadline time.Time) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-d.wake:
		return true
	case <-t.C:
		return false
	case <-q.stopped:
		return false
	}
}

func stopContext(stop chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
