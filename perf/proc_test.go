package perf

import (
	"os"
	"runtime"
	"testing"
	"time"
)

func TestParseStatCommWithSpacesAndParens(t *testing.T) {
	line := "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 1000 0 0 0 123 45 0 0 20 0 8 0 100 1000000 500 18446744073709551615\n"
	u, s, err := ParseStat([]byte(line))
	if err != nil || u != 123 || s != 45 {
		t.Fatalf("ParseStat = %d, %d, %v; want 123, 45", u, s, err)
	}
	for _, bad := range []string{"", "4242 no paren", "1 (x) S 1 2 3"} {
		if _, _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("ParseStat(%q): no error", bad)
		}
	}
}

func TestParseStatus(t *testing.T) {
	text := "Name:\tspate\nVmPeak:\t 2000 kB\nVmHWM:\t    1024 kB\nVmRSS:\t     512 kB\nRssAnon:\t 300 kB\nRssFile:\t 200 kB\nThreads:\t8\n"
	m, err := ParseStatus([]byte(text))
	want := MemStatus{PeakRSS: 1024 << 10, RSS: 512 << 10, Anon: 300 << 10, File: 200 << 10}
	if err != nil || m != want {
		t.Fatalf("ParseStatus = %+v, %v; want %+v", m, err, want)
	}
	if _, err := ParseStatus([]byte("Name:\tx\nVmRSS:\t1 kB\n")); err == nil {
		t.Error("no error without VmHWM")
	}
	if _, err := ParseStatus([]byte("VmHWM:\t1 MB\nVmRSS:\t1 kB\n")); err == nil {
		t.Error("no error for a unit other than kB")
	}
}

// The parsers read this very process: it has used CPU and holds memory.
func TestReadProcStatsOfThisProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc")
	}
	for end := time.Now().Add(100 * time.Millisecond); time.Now().Before(end); {
		_ = make([]byte, 1<<10) // burn some CPU
	}
	st, err := ReadProcStats(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v: %.2f CPU s", st, st.CPUSeconds())
	if st.ClockTick <= 0 || st.CPUSeconds() <= 0 {
		t.Errorf("CPU: %+v", st)
	}
	if st.Mem.PeakRSS <= 0 || st.Mem.RSS <= 0 || st.Mem.PeakRSS < st.Mem.RSS || st.Mem.Anon <= 0 {
		t.Errorf("memory: %+v", st.Mem)
	}
}
