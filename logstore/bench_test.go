package logstore

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// batchOfKiBRecords builds one batch of 1 KiB records totalling about size bytes.
func batchOfKiBRecords(size int) []byte {
	n := max(size/1040, 1)
	recs := make([]Record, n)
	for i := range recs {
		v := make([]byte, 1024)
		for j := range v {
			v[j] = byte(i*7 + j)
		}
		recs[i] = Record{Value: v}
	}
	return AppendBatch(nil, BatchSpec{BaseTimestamp: 1_700_000_000_000, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, Records: recs})
}

var benchBatchSizes = []struct {
	name string
	size int
}{{"batch=16KiB", 16 << 10}, {"batch=1MiB", 1 << 20}}

// BenchmarkAppend measures the leader append (validate, CRC, copy into the mapping, index)
// of 1 KiB records. Compare with BenchmarkWriteSyscall, the plain write(2) of the same bytes.
func BenchmarkAppend(b *testing.B) {
	for _, bs := range benchBatchSizes {
		b.Run(bs.name, func(b *testing.B) {
			batch := batchOfKiBRecords(bs.size)
			l, err := Open(b.TempDir(), DefaultConfig(), OpenOptions{})
			if err != nil {
				b.Fatal(err)
			}
			var info AppendInfo
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := l.AppendAsLeader(batch, 0, false, &info); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer() // Close syncs; neither this nor the write(2) baseline times a sync
			l.Close()
		})
	}
}

// BenchmarkWriteSyscall is the simplest alternative to the mmap append: write(2) of the same
// bytes to a file, rolling at the same segment size.
func BenchmarkWriteSyscall(b *testing.B) {
	for _, bs := range benchBatchSizes {
		b.Run(bs.name, func(b *testing.B) {
			batch := batchOfKiBRecords(bs.size)
			dir := b.TempDir()
			seg := 0
			f, err := os.Create(filepath.Join(dir, fmt.Sprint(seg)))
			if err != nil {
				b.Fatal(err)
			}
			written := int64(0)
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if written+int64(len(batch)) > DefaultConfig().SegmentBytes {
					f.Close()
					seg++
					f, _ = os.Create(filepath.Join(dir, fmt.Sprint(seg)))
					written = 0
				}
				if _, err := f.Write(batch); err != nil {
					b.Fatal(err)
				}
				written += int64(len(batch))
			}
			b.StopTimer()
			f.Close()
		})
	}
}

// populatedLog returns a log holding about total bytes of 16 KiB batches.
func populatedLog(b *testing.B, cfg Config, total int) *Log {
	batch := batchOfKiBRecords(16 << 10)
	l, err := Open(b.TempDir(), cfg, OpenOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var info AppendInfo
	for n := 0; n < total; n += len(batch) {
		if err := l.AppendAsLeader(batch, 0, false, &info); err != nil {
			b.Fatal(err)
		}
	}
	return l
}

// BenchmarkRead measures locating an offset and collecting 1 MiB of regions (what a fetch
// does before sendfile), from offsets spread over a 256 MiB log of 64 MiB segments.
func BenchmarkRead(b *testing.B) {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 64 << 20
	l := populatedLog(b, cfg, 256<<20)
	defer func() { b.StopTimer(); l.Close() }()
	leo := l.LogEndOffset()
	var res ReadResult
	b.SetBytes(1 << 20)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		off := int64(uint64(i)*2654435761) % leo
		if err := l.Read(off, 1<<20, leo, true, &res); err != nil {
			b.Fatal(err)
		}
		res.Release()
	}
}

// BenchmarkOffsetForTimestamp measures ListOffsets by time over the same log.
func BenchmarkOffsetForTimestamp(b *testing.B) {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 64 << 20
	l := populatedLog(b, cfg, 64<<20)
	defer func() { b.StopTimer(); l.Close() }()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok, err := l.OffsetForTimestamp(1_700_000_000_000); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkRecovery1GiBTail measures opening a log whose last 1 GiB was never checkpointed:
// every batch is read and its CRC checked, and the index entries are rebuilt.
func BenchmarkRecovery1GiBTail(b *testing.B) {
	dir := b.TempDir()
	cfg := DefaultConfig()
	l, err := Open(dir, cfg, OpenOptions{})
	if err != nil {
		b.Fatal(err)
	}
	batch := batchOfKiBRecords(1 << 20)
	var info AppendInfo
	for n := 0; n < 1<<30-len(batch); n += len(batch) {
		if err := l.AppendAsLeader(batch, 0, false, &info); err != nil {
			b.Fatal(err)
		}
	}
	leo := l.LogEndOffset()
	size := l.Size()
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l, err := Open(dir, cfg, OpenOptions{RecoveryPoint: 0})
		if err != nil {
			b.Fatal(err)
		}
		if l.LogEndOffset() != leo {
			b.Fatalf("recovered to %d, want %d", l.LogEndOffset(), leo)
		}
		b.StopTimer()
		l.Close()
		b.StartTimer()
	}
}
