// Package memstat measures heap allocation for tests that bound what an operation may
// allocate (decompression bombs, oversized claims): a bound on bytes, where
// testing.AllocsPerRun only counts allocations.
package memstat

import "runtime"

// AllocatedBy returns how many bytes the whole process allocated on the heap while fn ran
// (after a GC, so earlier garbage is not counted). Other goroutines' allocations are
// included: callers bound it loosely.
func AllocatedBy(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
