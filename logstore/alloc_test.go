package logstore

import "testing"

// TestAllocationBudgetAppendRead: the hot paths allocate nothing per operation in steady state
// (STYLE.md: allocation budgets as tests).
func TestAllocationBudgetAppendRead(t *testing.T) {
	cfg := DefaultConfig()
	l, err := Open(t.TempDir(), cfg, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	batch := batchOfKiBRecords(16 << 10)
	var info AppendInfo
	append1 := func() {
		if err := l.AppendAsLeader(batch, 0, false, &info); err != nil {
			t.Fatal(err)
		}
	}
	append1()
	if n := testing.AllocsPerRun(500, append1); n != 0 {
		t.Errorf("AppendAsLeader: %v allocations per append, want 0", n)
	}
	var res ReadResult
	leo := l.LogEndOffset()
	i := int64(0)
	read := func() {
		i = (i + 97) % leo
		if err := l.Read(i, 1<<20, leo, true, &res); err != nil || len(res.Regions) == 0 {
			t.Fatal(err)
		}
		res.Release()
	}
	read()
	if n := testing.AllocsPerRun(500, read); n != 0 {
		t.Errorf("Read: %v allocations per read, want 0", n)
	}
	var h BatchHeader
	check := func() {
		if err := CheckBatch(batch, 0, &h); err != nil {
			t.Fatal(err)
		}
	}
	if n := testing.AllocsPerRun(100, check); n != 0 {
		t.Errorf("CheckBatch: %v allocations, want 0", n)
	}
}
