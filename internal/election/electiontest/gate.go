// Package electiontest helps the coordinators' tests of partition elections: a Gate, embedded
// in a test host, holds the loads of elected partitions and refuses appends as a follower
// does; WaitLoaded waits for a load. Only tests import it.
package electiontest

import (
	"sync"
	"testing"
	"time"
)

// Gate is what a test host adds to hold loads: its log accessor calls Pass, which waits
// while the gate is held, and its append checks Refused. The zero Gate is open and refuses
// nothing. Its methods may be called from any goroutine.
type Gate struct {
	mu      sync.Mutex
	gate    chan struct{}  // closed by the release function of Hold; nil: open
	passes  int            // calls of Pass
	refused map[int32]bool // partitions whose appends fail (NOT_LEADER_OR_FOLLOWER)
}

// Pass counts a load reading a partition's log, and waits while the gate is held.
func (g *Gate) Pass() {
	g.mu.Lock()
	gate := g.gate
	g.passes++
	g.mu.Unlock()
	if gate != nil {
		<-gate
	}
}

// Hold makes every later Pass wait until the returned function is called (once or more).
func (g *Gate) Hold() (release func()) {
	gate := make(chan struct{})
	g.mu.Lock()
	g.gate = gate
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.gate = nil
			g.mu.Unlock()
			close(gate)
		})
	}
}

// Passes returns the number of calls of Pass: how many times a log was read to be loaded.
func (g *Gate) Passes() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.passes
}

// Refuse makes the appends to partition p fail from now on, as a follower's do.
func (g *Gate) Refuse(p int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.refused == nil {
		g.refused = map[int32]bool{}
	}
	g.refused[p] = true
}

// Refused reports whether the appends to partition p fail (Refuse).
func (g *Gate) Refused(p int32) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refused[p]
}

// WaitPasses waits until more than n loads have passed the gate (Passes > n). It fails the
// test after 10 seconds.
func (g *Gate) WaitPasses(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for g.Passes() <= n {
		if time.Now().After(deadline) {
			t.Fatalf("no load after %d", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// WaitLoaded waits until owns(p) (a coordinator's Owns): partition p, elected, is loaded. It
// fails the test after 10 seconds.
func WaitLoaded(t testing.TB, owns func(int32) bool, p int32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !owns(p) {
		if time.Now().After(deadline) {
			t.Fatalf("partition %d not loaded", p)
		}
		time.Sleep(time.Millisecond)
	}
}
