package logstore

import (
	"sync"

	"github.com/spate-broker/spate/internal/mmfile"
)

// prefaulter faults in freshly allocated pages of the active segment on its own goroutine, so
// the appender's copy does not take a page fault per 4 KiB (the reason a plain mmap append is
// slower than write(2)). Requests that do not fit the queue are dropped: prefaulting is a hint.
type prefaulter struct {
	mu      sync.Mutex
	ch      chan prefaultReq
	stopped bool // guarded by mu
	once    sync.Once
}

type prefaultReq struct {
	mf       *mmfile.File
	from, to int64
	release  bool // drop the range from the resident set instead (mmfile.Release)
}

func newPrefaulter() *prefaulter {
	return &prefaulter{ch: make(chan prefaultReq, 8)}
}

// populate queues [from, to) of mf for prefaulting. Called by the appender.
func (p *prefaulter) populate(mf *mmfile.File, from, to int64) {
	p.queue(prefaultReq{mf: mf, from: from, to: to})
}

// release queues [from, to) of mf to leave the process's resident set: bytes behind the
// append cursor are served from the page cache by sendfile, not through the mapping, so the
// mapping need not keep them (the broker's RSS stays near its heap, not its data).
func (p *prefaulter) release(mf *mmfile.File, from, to int64) {
	p.queue(prefaultReq{mf: mf, from: from, to: to, release: true})
}

func (p *prefaulter) queue(r prefaultReq) {
	p.once.Do(func() { go p.run() })
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	select {
	case p.ch <- r:
	default:
	}
}

// run populates queued ranges; mmfile.Populate is safe against concurrent Shrink and Close.
func (p *prefaulter) run() {
	for r := range p.ch {
		if r.release {
			r.mf.Release(r.from, r.to)
		} else {
			r.mf.Populate(r.from, r.to)
		}
	}
}

// stop ends the goroutine; after it returns no populate is running or will run.
func (p *prefaulter) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	p.stopped = true
	close(p.ch)
}
