package logstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// TopicPartition names a partition's log.
type TopicPartition struct {
	Topic     string
	Partition int32
}

func (tp TopicPartition) String() string { return fmt.Sprintf("%s-%d", tp.Topic, tp.Partition) }

// Checkpoint files of a data folder, in Kafka's text format:
//
//	0                      format version
//	2                      number of entries
//	orders 0 1234          topic, partition, offset
//	orders 1 99
const (
	RecoveryPointCheckpointFile  = "recovery-point-offset-checkpoint"
	LogStartOffsetCheckpointFile = "log-start-offset-checkpoint"
)

// Store owns the logs of one data folder (one <topic>-<partition> folder each) and the
// folder's checkpoint files, and runs the background flush (flush.ms), retention and
// checkpoint work, and compaction (cleaner.go). All methods may be called from any goroutine.
type Store struct {
	dir       string
	configFor func(TopicPartition) Config

	mu   sync.Mutex
	logs map[TopicPartition]*Log // guarded by mu

	ckptMu sync.Mutex // serializes checkpoint writes
}

// OpenStore opens every log found in dir, recovering each from the recovery point in the
// checkpoint (a log missing from it is scanned whole). configFor supplies each log's config.
func OpenStore(dir string, configFor func(TopicPartition) Config) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s := &Store{dir: dir, configFor: configFor, logs: map[TopicPartition]*Log{}}
	rps, err := ReadCheckpoint(filepath.Join(dir, RecoveryPointCheckpointFile))
	if err != nil {
		return nil, err
	}
	starts, err := ReadCheckpoint(filepath.Join(dir, LogStartOffsetCheckpointFile))
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if e.IsDir() && strings.HasSuffix(e.Name(), "-delete") {
			os.RemoveAll(filepath.Join(dir, e.Name())) // a deletion interrupted by a crash
			continue
		}
		tp, ok := ParseLogDirName(e.Name())
		if !e.IsDir() || !ok {
			continue
		}
		l, err := Open(filepath.Join(dir, e.Name()), configFor(tp), OpenOptions{RecoveryPoint: rps[tp], LogStartOffset: starts[tp]})
		if err != nil {
			s.Close()
			return nil, err
		}
		s.logs[tp] = l
	}
	return s, nil
}

// ParseLogDirName splits "<topic>-<partition>".
func ParseLogDirName(name string) (TopicPartition, bool) {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 {
		return TopicPartition{}, false
	}
	digits := name[i+1:]
	p, err := strconv.ParseInt(digits, 10, 32)
	if err != nil || p < 0 || strings.TrimLeft(digits, "0123456789") != "" {
		return TopicPartition{}, false
	}
	return TopicPartition{Topic: name[:i], Partition: int32(p)}, true
}

// Dir returns the data folder.
func (s *Store) Dir() string { return s.dir }

// Log returns the log of tp, or nil.
func (s *Store) Log(tp TopicPartition) *Log {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs[tp]
}

// Logs returns the store's partitions, sorted.
func (s *Store) Logs() []TopicPartition {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TopicPartition, 0, len(s.logs))
	for tp := range s.logs {
		out = append(out, tp)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// CreateLog returns tp's log, creating it empty with cfg when it does not exist.
func (s *Store) CreateLog(tp TopicPartition, cfg Config) (*Log, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.logs[tp]; l != nil {
		return l, nil
	}
	l, err := Open(filepath.Join(s.dir, tp.String()), cfg, OpenOptions{})
	if err != nil {
		return nil, err
	}
	s.logs[tp] = l
	return l, nil
}

// DeleteLog removes tp's log and its files.
func (s *Store) DeleteLog(tp TopicPartition) error {
	s.mu.Lock()
	l := s.logs[tp]
	delete(s.logs, tp)
	s.mu.Unlock()
	if l == nil {
		return nil
	}
	return l.Delete()
}

func (s *Store) snapshot() map[TopicPartition]*Log {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[TopicPartition]*Log, len(s.logs))
	for tp, l := range s.logs {
		m[tp] = l
	}
	return m
}

// Checkpoint writes the recovery points and log start offsets of every log.
func (s *Store) Checkpoint() error {
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	logs := s.snapshot()
	rps := make(map[TopicPartition]Offset, len(logs))
	starts := make(map[TopicPartition]Offset, len(logs))
	for tp, l := range logs {
		rps[tp] = l.RecoveryPoint()
		starts[tp] = l.LogStartOffset()
	}
	if err := WriteCheckpoint(filepath.Join(s.dir, RecoveryPointCheckpointFile), rps); err != nil {
		return err
	}
	return WriteCheckpoint(filepath.Join(s.dir, LogStartOffsetCheckpointFile), starts)
}

// Maintain runs the background work until ctx ends: logs whose flush.ms passed are synced
// (checked every flushCheck), retention runs every retentionCheck
// (log.retention.check.interval.ms), checkpoints are written every checkpointEvery, and
// compacted logs are cleaned when due (checked every retentionCheck, at most 15 s apart).
func (s *Store) Maintain(ctx context.Context, flushCheck, retentionCheck, checkpointEvery time.Duration) {
	ft, rt, ct := time.NewTicker(flushCheck), time.NewTicker(retentionCheck), time.NewTicker(checkpointEvery)
	// Compaction passes (cleaner.go) run on their own goroutine, at most cleanerBackoff apart:
	// a long pass must not hold up flushes.
	var cleaner sync.WaitGroup
	cleaner.Go(func() { s.compactLoop(ctx, min(retentionCheck, cleanerBackoff)) })
	defer cleaner.Wait()
	defer ft.Stop()
	defer rt.Stop()
	defer ct.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ft.C:
			s.FlushDue(time.Now().UnixMilli())
		case <-rt.C:
			s.ApplyRetention()
		case <-ct.C:
			s.Checkpoint()
		}
	}
}

// FlushDue syncs every log whose oldest unflushed append is older than its flush.ms.
func (s *Store) FlushDue(nowMs int64) error {
	var first error
	for _, l := range s.snapshot() {
		if l.FlushDue(nowMs) {
			if err := l.Sync(); err != nil && first == nil && !errors.Is(err, ErrClosed) {
				first = err
			}
		}
	}
	return first
}

// ApplyRetention runs retention on every log and returns the number of deleted segments.
func (s *Store) ApplyRetention() (int, error) {
	n := 0
	var first error
	for _, l := range s.snapshot() {
		d, err := l.ApplyRetention()
		n += d
		if err != nil && first == nil && !errors.Is(err, ErrClosed) {
			first = err
		}
	}
	return n, first
}

// Close syncs and closes every log and writes the checkpoints, so that the next start scans
// nothing.
func (s *Store) Close() error {
	logs := s.snapshot()
	var first error
	for _, l := range logs {
		if err := l.Sync(); err != nil && first == nil {
			first = err
		}
	}
	if err := s.Checkpoint(); err != nil && first == nil {
		first = err
	}
	for _, l := range logs {
		if err := l.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// WriteCheckpoint writes offsets atomically (temporary file, fsync, rename, fsync of the
// folder).
func WriteCheckpoint(path string, offsets map[TopicPartition]Offset) error {
	tps := make([]TopicPartition, 0, len(offsets))
	for tp := range offsets {
		tps = append(tps, tp)
	}
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].Topic != tps[j].Topic {
			return tps[i].Topic < tps[j].Topic
		}
		return tps[i].Partition < tps[j].Partition
	})
	var b strings.Builder
	fmt.Fprintf(&b, "0\n%d\n", len(tps))
	for _, tp := range tps {
		fmt.Fprintf(&b, "%s %d %d\n", tp.Topic, tp.Partition, offsets[tp])
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return fmt.Errorf("write checkpoint %q: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync checkpoint %q: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ReadCheckpoint reads a checkpoint file; a missing file is empty. A malformed file is an
// error (the owner then recovers every log from its start).
func ReadCheckpoint(path string) (map[TopicPartition]Offset, error) {
	out := map[TopicPartition]Offset{}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	line := 0
	bad := func() (map[TopicPartition]Offset, error) {
		return nil, fmt.Errorf("malformed checkpoint %q at line %d", path, line)
	}
	want := -1
	for sc.Scan() {
		line++
		t := sc.Text()
		switch line {
		case 1:
			if t != "0" {
				return bad()
			}
		case 2:
			n, err := strconv.Atoi(t)
			if err != nil || n < 0 {
				return bad()
			}
			want = n
		default:
			fs := strings.Fields(t)
			if len(fs) != 3 {
				return bad()
			}
			p, err1 := strconv.ParseInt(fs[1], 10, 32)
			o, err2 := strconv.ParseInt(fs[2], 10, 64)
			if err1 != nil || err2 != nil {
				return bad()
			}
			out[TopicPartition{fs[0], int32(p)}] = o
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if line > 0 && len(out) != want {
		return bad()
	}
	return out, nil
}
