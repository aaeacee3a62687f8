package logstore

// The aborted transaction index (KIP-98; Kafka's TransactionIndex): for each segment, the
// transactions whose abort marker lies in it, so that a read_committed fetch can tell the
// consumer which producers' records in the fetched range to drop.
//
// File <20-digit base offset>.txnindex, next to the segment's .log, .index and .timeindex,
// created by the segment's first entry (most segments have none). Entries are appended in
// increasing last_offset; each is 34 bytes, big-endian, as Kafka writes them:
//
//	+---------+-------------+--------------+-------------+--------------------+
//	| version | producer_id | first_offset | last_offset | last_stable_offset |
//	| int16   | int64       | int64        | int64       | int64              |
//	+---------+-------------+--------------+-------------+--------------------+
//	0         2             10             18            26                   34
//
//	version             0
//	producer_id         the producer whose transaction was aborted
//	first_offset        offset of the transaction's first data record
//	last_offset         offset of its abort marker (a control batch in this segment)
//	last_stable_offset  the partition's last stable offset once the abort completed
//
// Entries are rare, so each segment keeps all of its entries in memory (read when the log is
// opened; bounded only by the file's size), and the file is written with plain write(2) calls,
// one entry at a time, never mapped. An entry is durable after the next Log.Sync.
//
// Open reads every .txnindex file and keeps the valid prefix of each: the file ends at a torn
// entry (fewer than 34 bytes) or at the first entry that fails validation — version not 0,
// first_offset negative or after last_offset, last_offset not after the previous entry's or
// outside the segment — and entries at or past the recovered log end offset are dropped (their
// marker is gone). The file is then cut there, durably.
//
// The index follows its segment: retention, DeleteRecordsBefore, truncation and a segment
// dropped by the cleaner remove the file with the segment's other files; truncation drops the
// entries at or past the new log end; a segment cleaned by the compaction swap keeps its file
// as it is (the swap never touches it: entries name offsets, which cleaning does not change).
//
// Invariant: a segment's file holds exactly its in-memory entries (guarded by Log.appendMu);
// after a failed write the log's sticky write error stops further appends.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"sync/atomic"
)

const (
	txnIndexSuffix  = ".txnindex"
	txnEntrySize    = 34
	txnEntryVersion = 0
)

// AbortedTxn is one aborted transaction: its producer, its first data offset, the offset of its
// abort marker, and the partition's last stable offset after it completed.
type AbortedTxn struct {
	ProducerID, FirstOffset, LastOffset, LastStableOffset Offset
}

// txnIndex is a segment's aborted transactions. The zero value has none (and no file).
type txnIndex struct {
	// entries is the published list, ordered by LastOffset; nil when empty. Readers load it
	// under Log.mu (read) and only read it. The writer (under Log.appendMu) appends past the
	// published length and publishes the longer slice; when it drops entries it publishes a
	// fresh copy. So no element a reader can see is ever written again.
	entries atomic.Pointer[[]AbortedTxn]
	// unsynced is set when the file was written since it was last fsynced.
	unsynced atomic.Bool
}

// list returns the published entries.
func (x *txnIndex) list() []AbortedTxn {
	if p := x.entries.Load(); p != nil {
		return *p
	}
	return nil
}

// publish makes e the entries readers see.
func (x *txnIndex) publish(e []AbortedTxn) {
	if len(e) == 0 {
		x.entries.Store(nil)
		return
	}
	x.entries.Store(&e)
}

// sync fsyncs the file at path if it was written since the last sync. A file removed since
// (its entries were all dropped) has nothing to sync.
func (x *txnIndex) sync(path string) error {
	if !x.unsynced.Swap(false) {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		x.unsynced.Store(true)
		return fmt.Errorf("sync aborted transaction index %s: %w", path, err)
	}
	return nil
}

// appendTxnEntry encodes t as an index entry, appending it to dst.
func appendTxnEntry(dst []byte, t AbortedTxn) []byte {
	dst = binary.BigEndian.AppendUint16(dst, txnEntryVersion)
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.ProducerID))
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.FirstOffset))
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.LastOffset))
	return binary.BigEndian.AppendUint64(dst, uint64(t.LastStableOffset))
}

// decodeTxnEntries decodes the whole entries at the start of b for the segment holding offsets
// [base, end), appending them to dst (whose last entry, if any, precedes them). It stops at the
// first entry that fails validation (see the file comment) and returns the bytes consumed
// (whole valid entries) and whether every whole entry of b was valid.
func decodeTxnEntries(dst []AbortedTxn, b []byte, base, end Offset) ([]AbortedTxn, int, bool) {
	prev := base - 1
	if n := len(dst); n > 0 {
		prev = dst[n-1].LastOffset
	}
	n := 0
	for ; n+txnEntrySize <= len(b); n += txnEntrySize {
		e := b[n : n+txnEntrySize]
		t := AbortedTxn{
			ProducerID:       int64(binary.BigEndian.Uint64(e[2:])),
			FirstOffset:      int64(binary.BigEndian.Uint64(e[10:])),
			LastOffset:       int64(binary.BigEndian.Uint64(e[18:])),
			LastStableOffset: int64(binary.BigEndian.Uint64(e[26:])),
		}
		if binary.BigEndian.Uint16(e) != txnEntryVersion || t.FirstOffset < 0 || t.FirstOffset > t.LastOffset ||
			t.LastOffset <= prev || t.LastOffset >= end {
			return dst, n, false
		}
		dst = append(dst, t)
		prev = t.LastOffset
	}
	return dst, n, true
}

// readTxnIndex reads the index file at path of the segment holding [base, end): its valid
// entries (see decodeTxnEntries), the bytes they take and the file's size. A missing file has
// none. It allocates the entries (at most 32 bytes for each 34 of the file) and a read buffer
// of at most 4 KiB.
func readTxnIndex(path string, base, end Offset) (entries []AbortedTxn, valid, size int64, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, 0, nil
	}
	if err != nil {
		return nil, 0, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, 0, err
	}
	size = st.Size()
	whole := size / txnEntrySize * txnEntrySize
	if whole == 0 {
		return nil, 0, size, nil
	}
	entries = make([]AbortedTxn, 0, whole/txnEntrySize)
	buf := make([]byte, min(whole, 120*txnEntrySize))
	for valid < whole {
		n, rerr := io.ReadFull(f, buf[:min(int64(len(buf)), whole-valid)])
		n -= n % txnEntrySize
		var used int
		var ok bool
		entries, used, ok = decodeTxnEntries(entries, buf[:n], base, end)
		valid += int64(used)
		if !ok || rerr != nil || n == 0 {
			if rerr != nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) {
				return nil, 0, 0, fmt.Errorf("read aborted transaction index %s: %w", path, rerr)
			}
			break
		}
	}
	return entries, valid, size, nil
}

// cutTxnFile makes size (a multiple of the entry size) the length of the index file at path,
// durably: a later recovery must not find the dropped entries again, past a log end that new
// records may since have passed. A file left empty is removed; removed reports it.
func cutTxnFile(path string, size int64) (removed bool, err error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("cut aborted transaction index %s: %w", path, err)
	}
	if size == 0 {
		os.Remove(path) // an empty file reads as no entries: removing it is tidiness
		return true, nil
	}
	return false, nil
}

// writeTxnEntry writes t as the entry at byte position at of the index file at path, creating
// the file when needed.
func writeTxnEntry(path string, at int64, t AbortedTxn) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("open aborted transaction index %s: %w", path, err)
	}
	var b [txnEntrySize]byte
	_, err = f.WriteAt(appendTxnEntry(b[:0], t), at)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write aborted transaction index %s: %w", path, err)
	}
	return nil
}

// AppendAbortedTxn records an aborted transaction in the index of the active segment, which
// must hold its abort marker: t.LastOffset must lie in the active segment, below the log end
// offset, and after the LastOffset of every entry appended before; 0 <= t.FirstOffset <=
// t.LastOffset. The entry is durable after the next Sync.
func (l *Log) AppendAbortedTxn(t AbortedTxn) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.werr != nil {
		return l.werr
	}
	if l.closedLocked() {
		return ErrClosed
	}
	s := l.active()
	leo := l.logEndOffset.Load()
	cur := s.txn.list()
	switch {
	case t.FirstOffset < 0 || t.FirstOffset > t.LastOffset:
		return fmt.Errorf("aborted transaction of producer %d: offsets [%d, %d] out of order", t.ProducerID, t.FirstOffset, t.LastOffset)
	case t.LastOffset < s.base || t.LastOffset >= leo:
		return fmt.Errorf("aborted transaction of producer %d: marker offset %d is not in the active segment [%d, %d)",
			t.ProducerID, t.LastOffset, s.base, leo)
	case len(cur) > 0 && cur[len(cur)-1].LastOffset >= t.LastOffset:
		return fmt.Errorf("aborted transaction of producer %d: marker offset %d is not after the last entry's %d",
			t.ProducerID, t.LastOffset, cur[len(cur)-1].LastOffset)
	}
	if err := writeTxnEntry(segmentName(l.dir, s.base, txnIndexSuffix), int64(len(cur))*txnEntrySize, t); err != nil {
		return l.fail(err)
	}
	if len(cur) == 0 {
		l.dirDirty.Store(true) // the file is new
	}
	s.txn.unsynced.Store(true)
	l.txnDirty.Store(true)
	s.txn.publish(append(cur, t))
	return nil
}

// CollectAbortedTxns appends to dst the aborted transactions that overlap [from, upper): those
// with LastOffset >= from and FirstOffset < upper, ordered by LastOffset (what a read_committed
// fetch from offset from, bounded by upper, must report). Only the segments from the one holding
// from onwards are looked at. It allocates nothing when dst has room, and runs concurrently with
// appends, as Read does.
func (l *Log) CollectAbortedTxns(from, upper Offset, dst []AbortedTxn) []AbortedTxn {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return dst
	}
	for _, s := range l.segments[l.segmentIndexLocked(from):] {
		for _, e := range s.txn.list() {
			if e.LastOffset >= from && e.FirstOffset < upper {
				dst = append(dst, e)
			}
		}
	}
	return dst
}

// TruncateAbortedTxnsFrom drops the entries whose LastOffset is >= offset, durably (the broker
// calls it before it derives them again by replaying the log's tail after a restart).
func (l *Log) TruncateAbortedTxnsFrom(offset Offset) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	if err := l.truncateTxnsLocked(l.segments[l.segmentIndexLocked(offset):], offset); err != nil {
		return l.fail(err)
	}
	return nil
}

// truncateTxnsLocked drops the entries of segs whose LastOffset is >= offset. The caller holds
// appendMu and mu (read or write).
func (l *Log) truncateTxnsLocked(segs []*segment, offset Offset) error {
	for _, s := range segs {
		cur := s.txn.list()
		n := sort.Search(len(cur), func(i int) bool { return cur[i].LastOffset >= offset })
		if n == len(cur) {
			continue
		}
		s.txn.publish(append([]AbortedTxn(nil), cur[:n]...))
		removed, err := cutTxnFile(segmentName(l.dir, s.base, txnIndexSuffix), int64(n)*txnEntrySize)
		if err != nil {
			return err
		}
		if removed {
			l.dirDirty.Store(true)
		}
	}
	return nil
}

// loadTxnIndex reads segment s's index file at open, whose end offset is final, and cuts the
// file after its last valid entry.
func (l *Log) loadTxnIndex(s *segment) error {
	path := segmentName(l.dir, s.base, txnIndexSuffix)
	entries, valid, size, err := readTxnIndex(path, s.base, s.next.Load())
	if err != nil {
		return err
	}
	if valid < size {
		removed, err := cutTxnFile(path, valid)
		if err != nil {
			return err
		}
		if removed {
			l.dirDirty.Store(true)
		}
	}
	s.txn.publish(entries)
	return nil
}
