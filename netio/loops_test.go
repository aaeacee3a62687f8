package netio

import (
	"runtime"
	"testing"
)

// TestEventLoopsLeaveAPToGoroutines: Multicore runs one event loop per P but one (at least
// one); NumLoops overrides it; neither means gnet's single loop.
func TestEventLoopsLeaveAPToGoroutines(t *testing.T) {
	old := runtime.GOMAXPROCS(4)
	defer runtime.GOMAXPROCS(old)
	for _, tc := range []struct {
		procs int
		cfg   Config
		want  int
	}{
		{4, Config{Multicore: true}, 3},
		{2, Config{Multicore: true}, 1},
		{1, Config{Multicore: true}, 1},
		{4, Config{Multicore: true, NumLoops: 4}, 4},
		{4, Config{NumLoops: 2}, 2},
		{4, Config{}, 0},
	} {
		runtime.GOMAXPROCS(tc.procs)
		if got := eventLoops(tc.cfg); got != tc.want {
			t.Errorf("GOMAXPROCS %d, %+v: %d loops, want %d", tc.procs, tc.cfg, got, tc.want)
		}
	}
}
