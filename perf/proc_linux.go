package perf

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// ReadProcStats reads the CPU time and memory of process pid from /proc.
func ReadProcStats(pid int) (ProcStats, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcStats{}, fmt.Errorf("read process stats: %w", err)
	}
	s := ProcStats{ClockTick: clockTick()}
	if s.UserTicks, s.SystemTicks, err = ParseStat(stat); err != nil {
		return ProcStats{}, err
	}
	if s.Mem, err = ReadMemStatus(pid); err != nil {
		return ProcStats{}, err
	}
	s.PeakAnonBytes, s.PeakFileBytes = s.Mem.Anon, s.Mem.File
	return s, nil
}

// ReadMemStatus reads the memory lines of /proc/<pid>/status.
func ReadMemStatus(pid int) (MemStatus, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return MemStatus{}, fmt.Errorf("read process stats: %w", err)
	}
	return ParseStatus(status)
}

var clockTick = sync.OnceValue(func() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 100 // USER_HZ on every Linux architecture Go runs on
})
