package logstore

import (
	"sync"

	"github.com/spate-broker/spate/internal/mmfile"
)

// releaser gives back, on its own goroutine, the pages of a segment's mapping that lie behind
// the append cursor (mmfile.Release, MADV_DONTNEED): those bytes are read through the file
// (sendfile) from then on, so the mapping need not keep them resident, and the broker's RSS
// stays near its heap rather than its data. Requests that do not fit the queue are dropped:
// releasing is a hint.
//
// Batches from pwriteMinBytes are written through the file (no page faults); the appender
// takes the page faults of the small ones it copies into the mapping itself. Faulting pages
// in ahead of it (MADV_POPULATE_WRITE on this goroutine) was tried and measured: the
// appender's wall time went down a little, but the broker's CPU per GB went up (in make
// perf's S4, 100 partitions, by half: 1.84 vs 2.85 CPU seconds; S1 and S2 by a tenth) and so
// did its peak RSS, so it was dropped.
type releaser struct {
	mu      sync.Mutex
	ch      chan releaseReq
	stopped bool // guarded by mu
	once    sync.Once
}

type releaseReq struct {
	mf       *mmfile.File
	from, to int64
}

func newReleaser() *releaser {
	return &releaser{ch: make(chan releaseReq, 8)}
}

// release queues [from, to) of mf to leave the process's resident set. Called by the
// appender.
func (p *releaser) release(mf *mmfile.File, from, to int64) {
	p.once.Do(func() { go p.run() })
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	select {
	case p.ch <- releaseReq{mf: mf, from: from, to: to}:
	default:
	}
}

// run releases queued ranges; mmfile.Release is safe against concurrent Shrink and Close.
func (p *releaser) run() {
	for r := range p.ch {
		r.mf.Release(r.from, r.to)
	}
}

// stop ends the goroutine; after it returns no release is queued.
func (p *releaser) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	p.stopped = true
	close(p.ch)
}
