//go:build !race

package logstore

import (
	"math"
	"testing"
)

// TestAllocationBudgetCollectAbortedTxns: a read_committed fetch's lookup of aborted
// transactions allocates nothing when the caller's slice has room (STYLE.md: allocation budgets
// as tests).
func TestAllocationBudgetCollectAbortedTxns(t *testing.T) {
	l := txnTestOpen(t, t.TempDir(), 0)
	txnTestBuild(t, l)
	dst := make([]AbortedTxn, 0, 8)
	collect := func() {
		dst = l.CollectAbortedTxns(3, math.MaxInt64, dst[:0])
		if len(dst) != 4 {
			t.Fatalf("%d entries, want 4", len(dst))
		}
	}
	collect()
	if n := testing.AllocsPerRun(500, collect); n != 0 {
		t.Errorf("CollectAbortedTxns: %v allocations per call, want 0", n)
	}
}
