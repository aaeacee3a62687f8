//go:build !race

// Not built with -race: the race detector allocates on its own. The allocation budgets run in
// the plain test pass.

package replication

import (
	"context"
	"net"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/spate-broker/spate/logstore"
)

// blockedDial never connects: a fetcher whose request and response paths a test drives by hand.
func blockedDial(ctx context.Context, _, _ string) (net.Conn, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestAllocationBudgetFetchPath: building a fetch request for a partition (its offsets, last
// fetched epoch, encoding) and applying its response (decode, match to the request, epoch
// check, append as follower, release, OnFetched) allocate nothing per fetch.
func TestAllocationBudgetFetchPath(t *testing.T) {
	lg, c := openReplica(t, filepath.Join(t.TempDir(), "alloc-0"), logstore.DefaultConfig())
	defer lg.Close()
	f := NewFetcher(FetcherConfig{LocalID: 2, Addr: "unused:0", Dial: blockedDial, Logger: testLogger()})
	defer f.Close()
	var hw int64
	if err := f.Add(&Replica{Topic: "alloc", Partition: 0, Log: lg, Epochs: c, LeaderEpoch: 4,
		OnFetched: func(h, _ int64) { hw = h }}); err != nil {
		t.Fatal(err)
	}
	canned := newCannedFetch("alloc", 0, 16, 100, 4)
	fetch := func() {
		f.mu.Lock()
		ok := f.buildLocked(f.now())
		corr := f.params.correlationID
		f.mu.Unlock()
		if !ok {
			t.Fatal("no request built")
		}
		canned.set(corr, lg.LogEndOffset())
		if err := f.handle(canned.frame[4:]); err != nil {
			t.Fatal(err)
		}
	}
	fetch()
	before := lg.LogEndOffset()
	if n := testing.AllocsPerRun(500, fetch); n != 0 {
		t.Errorf("%v allocations per fetch, want 0", n)
	}
	if got, want := lg.LogEndOffset()-before, int64(501*16); got != want {
		t.Fatalf("appended %d records, want %d", got, want)
	}
	if e, _ := c.Latest(); e != 4 || hw != 0 {
		t.Fatalf("latest epoch %d, hw %d", e, hw)
	}
}

// TestAllocationBudgetSteadyStateReplication: end to end over a real socket — the fetcher's
// writer, reader, decode, append and callbacks — against a stub leader that allocates nothing
// itself: the process allocates nothing per fetch in steady state.
func TestAllocationBudgetSteadyStateReplication(t *testing.T) {
	lg, c := openReplica(t, filepath.Join(t.TempDir(), "alloc-0"), logstore.DefaultConfig())
	defer lg.Close()
	stub := startStubLeader(t, newCannedFetch("alloc", 0, 16, 100, 1))
	f := NewFetcher(FetcherConfig{LocalID: 2, Addr: stub.ln.Addr().String(), Logger: testLogger(),
		RequestTimeout: 10 * time.Second})
	defer f.Close()
	calls := 0
	if err := f.Add(&Replica{Topic: "alloc", Partition: 0, Log: lg, Epochs: c, LeaderEpoch: 1,
		OnFetched: func(int64, int64) { calls++ }}); err != nil {
		t.Fatal(err)
	}
	// The path itself allocates nothing (TestAllocationBudgetFetchPath counts exactly 0). What
	// the process may still allocate here is the runtime's, independent of the fetch count:
	// an OS thread (M) started while another sits in a syscall, and wait records (sudogs) for
	// blocking channel and mutex operations, whose caches a garbage collection empties. So:
	// collect before measuring, and require far fewer allocations than fetches (one per fetch
	// would be 5000).
	const warm, measured = 300, 5000
	stub.waitFetches(warm)
	runtime.GC()
	stub.waitFetches(2 * warm)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	stub.waitFetches(2*warm + measured)
	runtime.ReadMemStats(&m1)
	allocs := m1.Mallocs - m0.Mallocs
	perFetch := float64(allocs) / measured
	t.Logf("%d allocations over %d fetches (%.4f per fetch), %d bytes, %d collections", allocs, measured, perFetch,
		m1.TotalAlloc-m0.TotalAlloc, m1.NumGC-m0.NumGC)
	if perFetch >= 0.01 {
		t.Errorf("%.4f allocations per fetch, want 0", perFetch)
	}
	f.Close()
	if lg.LogEndOffset() < (2*warm+measured-1)*16 || calls < 2*warm+measured-1 {
		t.Fatalf("log end %d, %d callbacks", lg.LogEndOffset(), calls)
	}
}

// TestAllocationBudgetLeaderState: the per-fetch leader bookkeeping allocates nothing.
func TestAllocationBudgetLeaderState(t *testing.T) {
	l := NewLeaderState(LeaderConfig{LocalID: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}})
	off := int64(0)
	if n := testing.AllocsPerRun(1000, func() {
		off++
		l.SetLocalLEO(off)
		l.UpdateFollower(2, off, off, off)
		l.UpdateFollower(3, off-1, off, off)
		_ = l.HighWatermark()
	}); n != 0 {
		t.Errorf("%v allocations per update, want 0", n)
	}
	if l.HighWatermark() != off-1 {
		t.Fatalf("hw %d", l.HighWatermark())
	}
}
