package logstore

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/spate-broker/spate/index"
	"github.com/spate-broker/spate/internal/mmfile"
)

// Files of a segment swap (see cleaner.go): <base>.log.cleaned, <base>.index.cleaned and
// <base>.timeindex.cleaned while the cleaned copy is written; .swap once it is complete and
// synced, until it replaces the segment.
const (
	cleanedSuffix = ".cleaned"
	swapSuffix    = ".swap"
)

// segmentWriter writes the cleaned copy of a segment: the log through a buffer, the indexes as
// the log grows (one offset index entry per index.interval.bytes, as appends make them).
type segmentWriter struct {
	dir        string
	base       Offset
	interval   int64
	indexBytes int64 // segment.index.bytes
	f          *os.File
	bw         *bufio.Writer
	oidx       *index.OffsetIndex
	tidx       *index.TimeIndex
	pos        int64 // bytes written
	since      int64 // bytes since the last offset index entry
	maxTs      int64
	maxRel     uint32
}

// newSegmentWriter creates the .cleaned files of the segment at base. inputBytes (the size of
// the segment being cleaned) sizes the indexes.
func newSegmentWriter(dir string, base Offset, cfg *Config, inputBytes int64) (*segmentWriter, error) {
	w := &segmentWriter{dir: dir, base: base, interval: cfg.IndexIntervalBytes, indexBytes: cfg.SegmentIndexBytes, maxTs: -1}
	removeCleanerFiles(dir, base)
	// At most one offset index entry per batch, and one per interval: the cleaned copy rarely
	// outgrows its input (re-encoding may add a few bytes; leaving a batch uncompressed, more;
	// past the room below, entries are left out: the index is sparse anyway).
	entries := min(inputBytes/BatchHeaderSize, 2*inputBytes/w.interval) + 2
	var err error
	w.f, err = os.OpenFile(segmentName(dir, base, logSuffix)+cleanedSuffix, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err == nil {
		w.oidx, err = index.OpenOffsetIndex(segmentName(dir, base, indexSuffix)+cleanedSuffix,
			entries*index.OffsetEntrySize, true)
	}
	if err == nil {
		// The time index gets at most one entry per offset index entry, plus the last.
		w.tidx, err = index.OpenTimeIndex(segmentName(dir, base, timeIndexSuffix)+cleanedSuffix,
			(entries+1)*index.TimeEntrySize, true)
	}
	if err != nil {
		w.abort()
		return nil, fmt.Errorf("create cleaned segment %d: %w", base, err)
	}
	w.bw = bufio.NewWriterSize(w.f, 256<<10)
	return w, nil
}

// add appends a checked batch.
func (w *segmentWriter) add(batch []byte, h *BatchHeader) error {
	size := int64(len(batch))
	if w.pos+size > math.MaxInt32 {
		return fmt.Errorf("cleaned segment %d would pass 2 GiB", w.base)
	}
	if _, err := w.bw.Write(batch); err != nil {
		return fmt.Errorf("write cleaned segment %d: %w", w.base, err)
	}
	rel := uint32(h.LastOffset() - w.base)
	if h.MaxTimestamp > w.maxTs {
		w.maxTs, w.maxRel = h.MaxTimestamp, rel
	}
	if w.since += size; w.since >= w.interval {
		w.since = 0
		if w.oidx.Append(index.OffsetEntry{RelOffset: rel, Position: uint32(w.pos)}) == nil {
			if err := w.tidx.MaybeAppend(w.maxTs, w.maxRel); err != nil && !errors.Is(err, index.ErrFull) {
				return err
			}
		}
	}
	w.pos += size
	return nil
}

// abort closes and removes the files.
func (w *segmentWriter) abort() {
	if w.f != nil {
		w.f.Close()
	}
	if w.oidx != nil {
		w.oidx.Close()
	}
	if w.tidx != nil {
		w.tidx.Close()
	}
	removeCleanerFiles(w.dir, w.base)
}

// stage completes the cleaned copy of s: syncs and closes the .cleaned files and renames them
// to .swap (indexes first, the log last; the folder is synced before the commit), then opens
// them read-only as the segment that is to replace s, already loaded.
func (w *segmentWriter) stage(s *segment) (*segment, error) {
	err := w.bw.Flush()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	if err == nil {
		if err = w.tidx.MaybeAppend(w.maxTs, w.maxRel); errors.Is(err, index.ErrFull) {
			err = nil
		}
	}
	for _, x := range []interface {
		Seal() error
		Sync() error
		Close() error
	}{w.oidx, w.tidx} {
		if err == nil {
			err = x.Seal()
		}
		if err == nil {
			err = x.Sync()
		}
		if cerr := x.Close(); err == nil {
			err = cerr
		}
	}
	w.oidx, w.tidx = nil, nil
	for _, suf := range []string{indexSuffix, timeIndexSuffix, logSuffix} {
		if err == nil {
			name := segmentName(w.dir, w.base, suf)
			err = os.Rename(name+cleanedSuffix, name+swapSuffix)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("stage cleaned segment %d: %w", w.base, err)
	}
	testHookCleaner("staged")
	return openSwapSegment(s, w.pos, w.indexBytes)
}

// openSwapSegment opens the .swap files of s's cleaned copy (size bytes) read-only.
func openSwapSegment(s *segment, size, indexBytes int64) (*segment, error) {
	ns := &segment{base: s.base, dir: s.dir, cfg: s.cfg, maxTs: -1}
	ns.maxTsPub.Store(-1)
	ns.size.Store(size)
	ns.next.Store(s.next.Load())
	var err error
	if ns.mf, err = mmfile.Open(segmentName(s.dir, s.base, logSuffix)+swapSuffix, 0, false, false); err == nil {
		ns.oidx, err = index.OpenOffsetIndex(segmentName(s.dir, s.base, indexSuffix)+swapSuffix, indexBytes, false)
	}
	if err == nil {
		ns.tidx, err = index.OpenTimeIndex(segmentName(s.dir, s.base, timeIndexSuffix)+swapSuffix, indexBytes, false)
	}
	if err == nil && ns.mf.Size() != size {
		err = fmt.Errorf("file is %d bytes, wrote %d", ns.mf.Size(), size)
	}
	if err != nil {
		ns.loaded.Store(true)
		ns.release()
		return nil, fmt.Errorf("open cleaned segment %d: %w", s.base, err)
	}
	if e, ok := ns.tidx.Last(); ok {
		ns.setMaxTs(e.Timestamp, e.RelOffset)
	}
	ns.loaded.Store(true)
	return ns, nil
}

// removeCleanerFiles removes the .cleaned and .swap files of the segment at base.
func removeCleanerFiles(dir string, base Offset) {
	for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		os.Remove(segmentName(dir, base, suf) + cleanedSuffix)
		os.Remove(segmentName(dir, base, suf) + swapSuffix)
	}
}

// removeIndexFiles removes the index files of the segment at base.
func removeIndexFiles(dir string, base Offset) error {
	for _, suf := range []string{indexSuffix, timeIndexSuffix} {
		if err := os.Remove(segmentName(dir, base, suf)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// finishIndexSwap gives the committed cleaned segment at base its index files (step 5): once
// the log's rename is on disk, each index .swap is linked to its final name unless a file is
// already there (rebuilt, or recreated by a truncation, from the same log), and removed. A
// missing index is rebuilt from the log on the next load: a failed link costs time, never data.
func finishIndexSwap(dir string, base Offset) error {
	if err := syncDir(dir); err != nil {
		return err
	}
	for _, suf := range []string{indexSuffix, timeIndexSuffix} {
		name := segmentName(dir, base, suf)
		os.Link(name+swapSuffix, name) // fails when the name exists: then that index stays
		os.Remove(name + swapSuffix)
	}
	return nil // a link lost in a crash leaves the index to be rebuilt (or finished on open)
}

// finishCleanerFiles completes or rolls back the swaps a crash interrupted (see cleaner.go):
// .cleaned files are deleted; a log .swap was never committed and is deleted with its index
// .swap files; an index .swap whose log is committed is linked to its final name (unless that
// exists) and removed. Every compaction pass runs it first, and Open should run it before it
// lists the segments.
func finishCleanerFiles(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	names := make(map[string]bool, len(ents))
	for _, e := range ents {
		names[e.Name()] = true
	}
	changed := false
	for _, e := range ents {
		name := e.Name()
		path := filepath.Join(dir, name)
		switch {
		case strings.HasSuffix(name, cleanedSuffix):
			os.Remove(path)
			changed = true
		case strings.HasSuffix(name, swapSuffix):
			final := strings.TrimSuffix(name, swapSuffix)
			base, isIndex := parseSegmentName(final, indexSuffix)
			if !isIndex {
				base, isIndex = parseSegmentName(final, timeIndexSuffix)
			}
			logName := filepath.Base(segmentName(dir, base, logSuffix))
			if isIndex && !names[logName+swapSuffix] && names[logName] && !names[final] {
				os.Link(path, filepath.Join(dir, final))
			}
			os.Remove(path)
			changed = true
		}
	}
	if changed {
		return syncDir(dir)
	}
	return nil
}
