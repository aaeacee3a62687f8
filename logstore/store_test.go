package logstore

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func appendN(t *testing.T, l *Log, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		b := AppendBatch(nil, BatchSpec{BaseTimestamp: int64(1000 + i), ProducerID: -1, BaseSequence: -1,
			Records: []Record{{Value: bytes.Repeat([]byte{byte(i)}, 100)}, {Value: []byte("x")}}})
		var info AppendInfo
		if err := l.AppendAsLeader(b, 0, false, &info); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), RecoveryPointCheckpointFile)
	in := map[TopicPartition]Offset{{"orders", 0}: 1234, {"orders", 1}: 99, {"a.b_c-d", 7}: 0}
	if err := WriteCheckpoint(path, in); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if want := "0\n3\na.b_c-d 7 0\norders 0 1234\norders 1 99\n"; string(raw) != want {
		t.Fatalf("file %q, want %q", raw, want)
	}
	out, err := ReadCheckpoint(path)
	if err != nil || !reflect.DeepEqual(in, out) {
		t.Fatalf("read back %v %v", out, err)
	}
	os.WriteFile(path, []byte("0\n2\norders 0 1\n"), 0o644)
	if _, err := ReadCheckpoint(path); err == nil {
		t.Fatal("short checkpoint accepted")
	}
	if m, err := ReadCheckpoint(path + ".missing"); err != nil || len(m) != 0 {
		t.Fatalf("missing file: %v %v", m, err)
	}
}

func TestParseLogDirName(t *testing.T) {
	for name, want := range map[string]TopicPartition{"orders-0": {"orders", 0}, "my-topic-12": {"my-topic", 12}} {
		if got, ok := ParseLogDirName(name); !ok || got != want {
			t.Errorf("%s: %v %v", name, got, ok)
		}
	}
	for _, name := range []string{"orders", "-1", "orders-x", "orders-+1", "orders-1x"} {
		if _, ok := ParseLogDirName(name); ok {
			t.Errorf("%s parsed", name)
		}
	}
}

// TestStoreRecoveryScansOnlyUnflushedTail: after a clean close the checkpoint holds the log end
// offset, so reopening trusts everything below it. A byte corrupted below the recovery point
// is therefore not rescanned (the log keeps its end), while a reopen without the checkpoint
// scans it and truncates — which shows which part recovery reads.
func TestStoreRecoveryScansOnlyUnflushedTail(t *testing.T) {
	dir := t.TempDir()
	cfgFor := func(TopicPartition) Config { return DefaultConfig() }
	s, err := OpenStore(dir, cfgFor)
	if err != nil {
		t.Fatal(err)
	}
	tp := TopicPartition{"orders", 0}
	l, err := s.CreateLog(tp, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 10)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rps, _ := ReadCheckpoint(filepath.Join(dir, RecoveryPointCheckpointFile))
	if rps[tp] != 20 {
		t.Fatalf("recovery point %d, want 20", rps[tp])
	}
	// Corrupt the value of the 6th batch (offsets 10-11).
	seg := filepath.Join(dir, "orders-0", "00000000000000000000.log")
	f, _ := os.OpenFile(seg, os.O_RDWR, 0)
	batchSize := int64(len(AppendBatch(nil, BatchSpec{Records: []Record{{Value: bytes.Repeat([]byte{0}, 100)}, {Value: []byte("x")}}})))
	f.WriteAt([]byte{0xee}, 5*batchSize+BatchHeaderSize+10)
	f.Close()

	s, err = OpenStore(dir, cfgFor)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Log(tp).LogEndOffset(); got != 20 {
		t.Fatalf("with checkpoint: log end %d, want 20 (nothing below the recovery point rescanned)", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, RecoveryPointCheckpointFile))
	s, err = OpenStore(dir, cfgFor)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Log(tp).LogEndOffset(); got != 10 {
		t.Fatalf("without checkpoint: log end %d, want 10 (cut at the corrupt batch)", got)
	}
}

func TestStoreDeleteRecordsSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfgFor := func(TopicPartition) Config { return DefaultConfig() }
	s, _ := OpenStore(dir, cfgFor)
	tp := TopicPartition{"t", 3}
	l, _ := s.CreateLog(tp, DefaultConfig())
	appendN(t, l, 5)
	if got, err := l.DeleteRecordsBefore(7); err != nil || got != 7 {
		t.Fatalf("delete records: %d %v", got, err)
	}
	s.Close()
	s, _ = OpenStore(dir, cfgFor)
	defer s.Close()
	if got := s.Log(tp).LogStartOffset(); got != 7 {
		t.Fatalf("log start after restart %d, want 7", got)
	}
	if err := s.DeleteLog(tp); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "t-3")); !os.IsNotExist(err) {
		t.Fatalf("folder still there: %v", err)
	}
}
