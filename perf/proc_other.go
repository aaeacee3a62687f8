//go:build !linux

package perf

import "errors"

var errNoProc = errors.New("read process stats: needs Linux /proc")

// ReadProcStats needs Linux's /proc.
func ReadProcStats(pid int) (ProcStats, error) { return ProcStats{}, errNoProc }

// ReadMemStatus needs Linux's /proc.
func ReadMemStatus(pid int) (MemStatus, error) { return MemStatus{}, errNoProc }
