package perf

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// ProcStats is what the kernel accounts for a process: CPU time (user + system, all threads)
// and resident memory.
type ProcStats struct {
	UserTicks   int64     `json:"utime_ticks"` // /proc/<pid>/stat field 14
	SystemTicks int64     `json:"stime_ticks"` // field 15
	ClockTick   int64     `json:"clock_tick"`  // ticks per second (getconf CLK_TCK)
	Mem         MemStatus `json:"mem"`         // at the time of reading
	// PeakAnonBytes and PeakFileBytes are the highest RssAnon and RssFile seen while sampling
	// the process during the run (the kernel keeps a high-water mark only of the total,
	// VmHWM): anonymous memory is the heap and stacks, file memory the mapped files' pages
	// (an mmap'd log's page cache counts here, a write(2)'s does not).
	PeakAnonBytes int64 `json:"peak_anon_bytes"`
	PeakFileBytes int64 `json:"peak_file_bytes"`
}

// MemStatus is the memory part of /proc/<pid>/status, in bytes.
type MemStatus struct {
	PeakRSS int64 `json:"vm_hwm_bytes"`   // VmHWM: the resident set's high-water mark
	RSS     int64 `json:"vm_rss_bytes"`   // VmRSS
	Anon    int64 `json:"rss_anon_bytes"` // RssAnon (Linux ≥ 4.5; else 0)
	File    int64 `json:"rss_file_bytes"` // RssFile
}

// CPUSeconds is user + system time in seconds.
func (s ProcStats) CPUSeconds() float64 {
	if s.ClockTick <= 0 {
		return 0
	}
	return float64(s.UserTicks+s.SystemTicks) / float64(s.ClockTick)
}

// ParseStat reads utime and stime from the text of /proc/<pid>/stat:
//
//	pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime …
//	 1    2      3    4    5     6       7      8     9     10     11     12     13     14    15
//
// comm may hold spaces and parentheses, so fields are counted after its last ')'.
func ParseStat(data []byte) (utime, stime int64, err error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse /proc stat: no ')' after comm")
	}
	f := strings.Fields(string(data[i+1:])) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("parse /proc stat: %d fields after comm, want at least 13", len(f))
	}
	if utime, err = strconv.ParseInt(f[11], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("parse /proc stat utime: %w", err)
	}
	if stime, err = strconv.ParseInt(f[12], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("parse /proc stat stime: %w", err)
	}
	return utime, stime, nil
}

// ParseStatus reads the memory lines of /proc/<pid>/status, which read "VmHWM:\t  123456 kB".
// VmHWM and VmRSS must be there.
func ParseStatus(data []byte) (MemStatus, error) {
	var m MemStatus
	fields := map[string]*int64{"VmHWM": &m.PeakRSS, "VmRSS": &m.RSS, "RssAnon": &m.Anon, "RssFile": &m.File}
	found := 0
	for line := range strings.Lines(string(data)) {
		k, v, ok := strings.Cut(line, ":")
		dst := fields[k]
		if !ok || dst == nil {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return MemStatus{}, fmt.Errorf("parse /proc status %s: %q", k, strings.TrimSpace(v))
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return MemStatus{}, fmt.Errorf("parse /proc status %s: %w", k, err)
		}
		*dst = n << 10
		if k == "VmHWM" || k == "VmRSS" {
			found++
		}
	}
	if found != 2 {
		return MemStatus{}, fmt.Errorf("parse /proc status: VmHWM or VmRSS missing")
	}
	return m, nil
}
