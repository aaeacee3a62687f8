package logstore

// Log compaction tests. TestCompactionAgainstModel is the metamorphic test: one seeded
// sequence of keyed appends (updates, tombstones, compressed and idempotent batches),
// compaction passes, rolls, reopens, truncations, DeleteRecords and clock jumps over tiny
// segments, checked after every step against the records that were appended. Replay a failure
// with the -seed it prints.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// useGzipCodecs installs gzip (codec 1) as the DecompressReader and Compress hooks for one
// test.
func useGzipCodecs(t testing.TB) {
	oldD, oldC := DecompressReader, Compress
	DecompressReader = func(codec int, src []byte) (io.ReadCloser, error) {
		if codec != 1 {
			return nil, fmt.Errorf("codec %d not available", codec)
		}
		return gzip.NewReader(bytes.NewReader(src))
	}
	Compress = func(codec int, src, dst []byte) ([]byte, error) {
		if codec != 1 {
			return nil, fmt.Errorf("codec %d not available", codec)
		}
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		w.Write(src)
		if err := w.Close(); err != nil {
			return nil, err
		}
		return append(dst, buf.Bytes()...), nil
	}
	t.Cleanup(func() { DecompressReader, Compress = oldD, oldC })
}

// gzipBatch returns batch (uncompressed, from AppendBatch) with its records gzip-compressed.
func gzipBatch(batch []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(batch[BatchHeaderSize:])
	w.Close()
	out := append(append([]byte(nil), batch[:BatchHeaderSize]...), buf.Bytes()...)
	a := binary.BigEndian.Uint16(out[offAttributes:]) | 1
	binary.BigEndian.PutUint16(out[offAttributes:], a)
	return finishBatch(out, 0)
}

// testRecord is a record decoded independently of the cleaner's decoder.
type testRecord struct {
	off        Offset
	key, value []byte // nil = null
	headers    []RecordHeader
	ts         int64
}

// decodeTestBatch decodes every record of a checked batch.
func decodeTestBatch(batch []byte, h *BatchHeader) ([]testRecord, error) {
	recs := batch[BatchHeaderSize:h.Size()]
	if c := h.Compression(); c != 0 {
		var err error
		if recs, err = Decompress(c, recs, nil); err != nil {
			return nil, err
		}
	}
	varint := func() int64 {
		v, n := binary.Varint(recs)
		if n <= 0 {
			panic("bad varint")
		}
		recs = recs[n:]
		return v
	}
	bytesField := func() []byte {
		n := varint()
		if n < 0 {
			return nil
		}
		v := append([]byte{}, recs[:n]...)
		recs = recs[n:]
		return v
	}
	var out []testRecord
	for i := int32(0); i < h.RecordCount; i++ {
		length := varint()
		end := len(recs) - int(length)
		recs = recs[1:] // attributes
		ts := h.BaseTimestamp + varint()
		if h.Attributes&AttrLogAppendTime != 0 {
			ts = h.MaxTimestamp
		}
		r := testRecord{off: h.BaseOffset + varint(), ts: ts}
		r.key, r.value = bytesField(), bytesField()
		for n := varint(); n > 0; n-- {
			r.headers = append(r.headers, RecordHeader{Key: string(bytesField()), Value: bytesField()})
		}
		if len(recs) != end {
			return nil, fmt.Errorf("record %d: length %d does not match its fields", i, length)
		}
		out = append(out, r)
	}
	if len(recs) != 0 {
		return nil, fmt.Errorf("%d bytes after the records", len(recs))
	}
	return out, nil
}

// readAllBatches reads [from, log end) in one go and returns the batches.
func readAllBatches(l *Log, from Offset) ([][]byte, error) {
	var res ReadResult
	defer res.Release()
	if err := l.Read(from, 1<<40, l.LogEndOffset(), true, &res); err != nil {
		return nil, err
	}
	var all []byte
	for _, r := range res.Regions {
		all = append(all, r.Data...)
	}
	var out [][]byte
	var h BatchHeader
	for len(all) > 0 {
		if err := CheckBatch(all, 0, &h); err != nil {
			return nil, fmt.Errorf("batch %d: %w", len(out), err)
		}
		out = append(out, all[:h.Size()])
		all = all[h.Size():]
	}
	return out, nil
}

// cmRecord is an appended record, as the model knows it.
type cmRecord struct {
	testRecord
	base   Offset // original batch
	seq    int32  // producer sequence, -1 when not idempotent
	isTomb bool
}

// cmBatch is an appended batch, as stored by the append.
type cmBatch struct {
	base, last  Offset
	stored      []byte
	pid         int64
	epoch       int16
	leaderEpoch int32
	tombstones  bool
}

type compactConfig struct {
	name        string
	cfg         Config
	keys        int
	compressed  bool // some batches are gzip-compressed
	logAppend   bool
	retentionMs int64
}

func compactConfigs() []compactConfig {
	tiny := DefaultConfig()
	tiny.SegmentBytes, tiny.IndexIntervalBytes, tiny.PreallocateBytes = 900, 1, 4096
	tiny.Compacted, tiny.MinCleanableDirtyRatio = true, 0
	ratio := tiny
	ratio.SegmentBytes, ratio.IndexIntervalBytes, ratio.MinCleanableDirtyRatio = 1500, 4096, 0.5
	ratio.CleanerBufferBytes = 64 * offsetMapEntryBytes // 48 keys a pass: passes stop early
	lag := tiny
	lag.MinCompactionLagMs, lag.MaxCompactionLagMs, lag.MinCleanableDirtyRatio = 300, 2000, 0.9
	appendTime := tiny
	appendTime.LogAppendTime, appendTime.SegmentBytes = true, 2500
	return []compactConfig{
		{name: "tiny-segments", cfg: tiny, keys: 20, retentionMs: 500},
		{name: "small-key-map", cfg: ratio, keys: 120, compressed: true, retentionMs: 200},
		{name: "compaction-lag", cfg: lag, keys: 12, retentionMs: 0},
		{name: "log-append-time-gzip", cfg: appendTime, keys: 40, compressed: true, logAppend: true, retentionMs: 1000},
	}
}

func TestCompactionAgainstModel(t *testing.T) {
	useGzipCodecs(t)
	for _, cc := range compactConfigs() {
		t.Run(cc.name, func(t *testing.T) {
			seeds := []uint64{*seedFlag}
			if *seedFlag == 0 {
				base := uint64(time.Now().UnixNano())
				seeds = seeds[:0]
				for i := 0; i < *runsFlag; i++ {
					seeds = append(seeds, base+uint64(i)*7919)
				}
			}
			for _, seed := range seeds {
				runCompactModel(t, cc, seed, *stepsFlag*5/8)
				if t.Failed() {
					t.Fatalf("failing seed: go test ./logstore -run 'TestCompactionAgainstModel/%s' -seed %d", cc.name, seed)
				}
			}
		})
	}
}

// compactModel runs one seeded sequence against a log.
type compactModel struct {
	t       *testing.T
	cc      compactConfig
	seed    uint64
	step    int
	rng     *rand.Rand
	dir     string
	cfg     Config
	clock   int64
	l       *Log
	recs    map[Offset]*cmRecord // every appended record not truncated away
	batches map[Offset]*cmBatch  // by original base offset
	start   Offset
	leo     Offset
	epoch   int32
	seqs    map[int64]int32 // next sequence of each idempotent producer
	// truncated marks producers whose batches a truncation removed: the cleaner may have
	// dropped their earlier batches while a later one existed. A new batch ends it.
	truncated map[int64]bool
	// horizons holds the delete horizon seen on each tombstone's batch, and the pass that set it.
	horizons map[Offset]cmHorizon
	passes   int    // passes run
	lastPass int64  // time of the last pass, -1 before the first
	maxEnd   Offset // the highest end of a pass's mapped part: truncation stays above it
}

type cmHorizon struct {
	at   int64 // the horizon
	pass int   // the pass that set it
}

func (m *compactModel) fail(format string, args ...any) {
	m.t.Helper()
	m.t.Errorf("seed %d step %d: %s", m.seed, m.step, fmt.Sprintf(format, args...))
}

func runCompactModel(t *testing.T, cc compactConfig, seed uint64, steps int) {
	m := &compactModel{t: t, cc: cc, seed: seed, rng: rand.New(rand.NewPCG(seed, seed^0x5bd1e995)),
		dir: t.TempDir(), cfg: cc.cfg, clock: 1_700_000_000_000, recs: map[Offset]*cmRecord{},
		batches: map[Offset]*cmBatch{}, seqs: map[int64]int32{}, truncated: map[int64]bool{}, horizons: map[Offset]cmHorizon{}, lastPass: -1}
	m.cfg.Now = func() int64 { return m.clock }
	m.cfg.DeleteRetentionMs = cc.retentionMs
	var err error
	if m.l, err = Open(m.dir, m.cfg, OpenOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() { m.l.Close() }()
	for m.step = 0; m.step < steps && !t.Failed(); m.step++ {
		m.clock += int64(m.rng.IntN(15))
		switch op := m.rng.IntN(100); {
		case op < 50:
			m.appendBatches()
		case op < 62:
			m.compact(m.rng.IntN(3) != 0)
		case op < 67:
			m.clock += int64(m.rng.IntN(int(cc.retentionMs) + 300))
		case op < 72:
			if err := m.l.Roll(); err != nil {
				m.fail("roll: %v", err)
			}
		case op < 78:
			m.reopen()
		case op < 90:
			m.checkReads()
		case op < 94:
			m.truncate()
		case op < 96:
			off := m.start + m.rng.Int64N(m.leo-m.start+1)
			if _, err := m.l.DeleteRecordsBefore(off); err != nil {
				m.fail("delete records before %d: %v", off, err)
			}
			m.start = off
		default:
			m.checkTimeLookups()
		}
		if m.step%8 == 0 {
			m.verify(nil) // passes, reopens and truncations verify too
		}
	}
	m.compact(true)
	m.verify(nil)
}

func (m *compactModel) appendBatches() {
	var recs []byte
	var pending []*cmBatch
	var pendingRecs [][]*cmRecord
	next := m.leo
	for k := 1 + m.rng.IntN(2); k > 0; k-- {
		n := 1 + m.rng.IntN(8)
		if m.rng.IntN(10) == 0 {
			n = 1 + m.rng.IntN(40)
		}
		spec := BatchSpec{BaseTimestamp: m.clock - int64(m.rng.IntN(40)), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, PartitionLeaderEpoch: -1}
		if m.rng.IntN(3) == 0 {
			spec.ProducerID = int64(m.rng.IntN(3))
			spec.ProducerEpoch = 1
			spec.BaseSequence = m.seqs[spec.ProducerID]
			m.seqs[spec.ProducerID] = incrementSequence(spec.BaseSequence, int64(n))
		}
		b := &cmBatch{base: next, last: next + int64(n) - 1, pid: spec.ProducerID, epoch: spec.ProducerEpoch, leaderEpoch: m.epoch}
		var rs []*cmRecord
		for i := 0; i < n; i++ {
			r := Record{Key: []byte(fmt.Sprintf("k%03d", m.rng.IntN(m.cc.keys))), TimestampDelta: int64(m.rng.IntN(60)) - 20}
			if m.rng.IntN(7) != 0 {
				r.Value = []byte(fmt.Sprintf("v%d-%d-%x", next+int64(i), m.step, m.rng.Uint32()))
			} else {
				b.tombstones = true
			}
			if m.rng.IntN(5) == 0 {
				r.Headers = []RecordHeader{{Key: "h", Value: []byte(fmt.Sprint(m.rng.IntN(100)))}}
			}
			spec.Records = append(spec.Records, r)
			cr := &cmRecord{testRecord: testRecord{off: next + int64(i), key: r.Key, value: r.Value, headers: r.Headers,
				ts: spec.BaseTimestamp + r.TimestampDelta}, base: next, seq: -1, isTomb: r.Value == nil}
			if spec.ProducerID >= 0 {
				cr.seq = incrementSequence(spec.BaseSequence, int64(i))
			}
			rs = append(rs, cr)
		}
		batch := AppendBatch(nil, spec)
		if m.cc.compressed && m.rng.IntN(3) == 0 {
			batch = gzipBatch(batch)
		}
		recs = append(recs, batch...)
		pending, pendingRecs = append(pending, b), append(pendingRecs, rs)
		next += int64(n)
	}
	if m.rng.IntN(10) == 0 {
		m.epoch++
	}
	var info AppendInfo
	if err := m.l.AppendAsLeader(recs, m.epoch, false, &info); err != nil {
		if CodeOf(err) == CodeRecordListTooLarge && int64(len(recs)) > m.cfg.SegmentBytes {
			for _, b := range pending {
				if b.pid >= 0 {
					m.seqs[b.pid] = incrementSequence(m.seqs[b.pid], -(b.last - b.base + 1))
				}
			}
			return
		}
		m.fail("append: %v", err)
		return
	}
	if info.FirstOffset != m.leo || info.LastOffset != next-1 {
		m.fail("append at [%d,%d], model [%d,%d]", info.FirstOffset, info.LastOffset, m.leo, next-1)
	}
	var h BatchHeader
	rest := recs
	for i, b := range pending {
		ParseBatchHeader(rest, &h)
		b.stored = append([]byte(nil), rest[:h.Size()]...)
		SetBaseOffset(b.stored, b.base)
		SetPartitionLeaderEpoch(b.stored, m.epoch)
		b.leaderEpoch = m.epoch
		if m.cfg.LogAppendTime {
			setLogAppendTime(b.stored, m.clock)
			for _, r := range pendingRecs[i] {
				r.ts = m.clock
			}
		}
		rest = rest[h.Size():]
		m.batches[b.base] = b
		delete(m.truncated, b.pid)
		for _, r := range pendingRecs[i] {
			m.recs[r.off] = r
		}
	}
	m.leo = next
}

func (m *compactModel) compact(force bool) {
	start, leo := m.l.LogStartOffset(), m.l.LogEndOffset()
	m.l.mu.RLock()
	activeBase := m.l.segments[len(m.l.segments)-1].base
	m.l.mu.RUnlock()
	st, err := m.l.Compact(context.Background(), force)
	if err != nil {
		m.fail("compact: %v", err)
		return
	}
	if m.l.LogStartOffset() != start || m.l.LogEndOffset() != leo {
		m.fail("compaction moved the log: [%d,%d) -> [%d,%d)", start, leo, m.l.LogStartOffset(), m.l.LogEndOffset())
	}
	if !st.Ran {
		if force {
			m.fail("forced pass did not run")
		}
		return
	}
	if m.l.RecoveryPoint() != leo {
		m.fail("recovery point %d after a pass, log end %d (a pass syncs first)", m.l.RecoveryPoint(), leo)
	}
	if !st.Complete {
		m.fail("pass stopped early with nothing running beside it: %+v", st)
	}
	if st.EndOffset > activeBase {
		// Kafka never cleans the active segment: a pass ends at or before its base (every
		// segment below the end was cleaned by the pass; checkLatest relies on it).
		m.fail("pass ended at %d, past the active segment at %d: %+v", st.EndOffset, activeBase, st)
	}
	if testing.Verbose() && *seedFlag != 0 {
		m.t.Logf("step %d: pass %+v", m.step, st)
	}
	m.passes++
	m.lastPass = m.clock
	m.maxEnd = max(m.maxEnd, st.EndOffset)
	m.verify(&st)
}

func (m *compactModel) reopen() {
	before, err := readAllBatches(m.l, m.l.LogStartOffset())
	if err != nil {
		m.fail("read before close: %v", err)
		return
	}
	rp, start := m.l.RecoveryPoint(), m.l.LogStartOffset()
	if err := m.l.Close(); err != nil {
		m.fail("close: %v", err)
	}
	if m.rng.IntN(2) == 0 {
		rp = 0 // recovery scans everything
	}
	if m.l, err = Open(m.dir, m.cfg, OpenOptions{RecoveryPoint: rp, LogStartOffset: start}); err != nil {
		m.t.Fatalf("seed %d step %d reopen: %v", m.seed, m.step, err)
	}
	after, err := readAllBatches(m.l, m.l.LogStartOffset())
	if err != nil || !bytes.Equal(bytes.Join(before, nil), bytes.Join(after, nil)) {
		m.fail("log differs after reopen (%v): %d batches before, %d after", err, len(before), len(after))
	}
	m.verify(nil)
}

// truncate cuts the log above everything a pass has mapped (as a follower truncates only above
// the high watermark, which bounds cleaning).
func (m *compactModel) truncate() {
	if m.leo <= m.maxEnd {
		return
	}
	off := m.maxEnd + m.rng.Int64N(m.leo-m.maxEnd)
	next := off
	var res ReadResult
	if err := m.l.Read(max(off, m.l.LogStartOffset()), 1, m.leo, true, &res); err == nil && res.FirstOffset >= 0 && res.FirstOffset < off {
		next = res.FirstOffset
	}
	res.Release()
	if next < m.maxEnd || next < m.start {
		return
	}
	if testing.Verbose() && *seedFlag != 0 {
		m.t.Logf("step %d: truncate to %d (log end %d, mapped up to %d)", m.step, off, next, m.maxEnd)
	}
	if err := m.l.TruncateTo(off); err != nil {
		m.fail("truncate to %d: %v", off, err)
		return
	}
	for o := range m.recs {
		if o >= next {
			delete(m.recs, o)
		}
	}
	for o := range m.horizons {
		if o >= next {
			delete(m.horizons, o)
		}
	}
	for o, b := range m.batches {
		if o >= next {
			delete(m.batches, o)
			if b.pid >= 0 {
				m.seqs[b.pid] = incrementSequence(m.seqs[b.pid], -(b.last - b.base + 1))
				m.truncated[b.pid] = true
			}
		}
	}
	m.leo = next
	m.verify(nil)
}

// checkReads compares reads from random offsets with a full read: each starts at the first
// batch whose last offset is >= the offset asked for.
func (m *compactModel) checkReads() {
	all, err := readAllBatches(m.l, m.start)
	if err != nil {
		m.fail("read: %v", err)
		return
	}
	for k := 0; k < 5; k++ {
		off := m.start + m.rng.Int64N(m.leo-m.start+1)
		var want []byte
		var h BatchHeader
		for _, b := range all {
			if ParseBatchHeader(b, &h); h.LastOffset() >= off {
				want = append(want, b...)
			}
		}
		got, err := readAllBatches(m.l, off)
		if err != nil || !bytes.Equal(bytes.Join(got, nil), want) {
			m.fail("read from %d (%v): %d batches, want %d bytes", off, err, len(got), len(want))
		}
	}
}

// checkTimeLookups compares OffsetForTimestamp with the first surviving record (in offset
// order, at or after the log start) whose timestamp is at least the one asked for.
func (m *compactModel) checkTimeLookups() {
	all, err := readAllBatches(m.l, m.start)
	if err != nil {
		m.fail("read: %v", err)
		return
	}
	var recs []testRecord
	var h BatchHeader
	for _, b := range all {
		ParseBatchHeader(b, &h)
		rs, _ := decodeTestBatch(b, &h)
		recs = append(recs, rs...)
	}
	for k := 0; k < 4; k++ {
		ts := m.clock - int64(m.rng.IntN(3000))
		want, wok := TimestampOffset{}, false
		for _, r := range recs {
			if r.ts >= ts && r.off >= m.start {
				want, wok = TimestampOffset{r.off, r.ts}, true
				break
			}
		}
		got, ok, err := m.l.OffsetForTimestamp(ts)
		if err != nil || ok != wok || got != want {
			m.fail("offset for time %d: got %+v %v %v, want %+v %v", ts, got, ok, err, want, wok)
		}
	}
}

// verify checks the whole log against the appended records; pass is the pass that just ran.
func (m *compactModel) verify(pass *CompactStats) {
	m.t.Helper()
	if m.l.LogStartOffset() != m.start || m.l.LogEndOffset() != m.leo {
		m.fail("log [%d,%d), model [%d,%d)", m.l.LogStartOffset(), m.l.LogEndOffset(), m.start, m.leo)
		return
	}
	batches, err := readAllBatches(m.l, m.start)
	if err != nil {
		m.fail("read: %v", err)
		return
	}
	present := map[Offset]bool{}
	below := map[string]int{} // records per key below the pass's end
	lastOffset := Offset(-1)
	var h BatchHeader
	for _, b := range batches {
		ParseBatchHeader(b, &h)
		m.checkBatch(b, &h, lastOffset)
		lastOffset = h.LastOffset()
		rs, err := decodeTestBatch(b, &h)
		if err != nil {
			m.fail("batch at %d: %v", h.BaseOffset, err)
			return
		}
		for _, r := range rs {
			want := m.recs[r.off]
			if want == nil {
				m.fail("record at %d was never appended (or was truncated)", r.off)
				continue
			}
			if !bytes.Equal(r.key, want.key) || (r.value == nil) != (want.value == nil) || !bytes.Equal(r.value, want.value) ||
				fmt.Sprint(r.headers) != fmt.Sprint(want.headers) || r.ts != want.ts {
				m.fail("record at %d: got %q=%q %v ts %d, appended %q=%q %v ts %d", r.off, r.key, r.value, r.headers, r.ts,
					want.key, want.value, want.headers, want.ts)
			}
			if seq := incrementSequence(h.BaseSequence, r.off-h.BaseOffset); h.ProducerID >= 0 && seq != want.seq {
				m.fail("record at %d has sequence %d, appended with %d", r.off, seq, want.seq)
			}
			present[r.off] = true
			if want.isTomb {
				m.noteHorizon(r.off, &h, pass)
			}
			if pass != nil && r.off < pass.EndOffset && r.off >= m.start {
				below[string(r.key)]++
			}
		}
	}
	m.checkLatest(present, pass)
	m.checkProducers(batches)
	for k, n := range below {
		if n > 1 {
			m.fail("key %s appears %d times below the end %d of a complete pass %+v", k, n, pass.EndOffset, *pass)
			if testing.Verbose() {
				for _, b := range batches {
					ParseBatchHeader(b, &h)
					rs, _ := decodeTestBatch(b, &h)
					for _, r := range rs {
						if string(r.key) == k {
							m.t.Logf("  %s at %d (batch [%d,%d])", k, r.off, h.BaseOffset, h.LastOffset())
						}
					}
				}
			}
		}
	}
	m.checkSegments()
}

// checkBatch checks a stored batch against the appended batch it came from.
func (m *compactModel) checkBatch(b []byte, h *BatchHeader, prevLast Offset) {
	if h.BaseOffset <= prevLast {
		m.fail("batch at %d after a batch ending at %d", h.BaseOffset, prevLast)
	}
	orig := m.origBatch(h.LastOffset())
	if orig == nil || orig.last != h.LastOffset() || h.BaseOffset < orig.base {
		m.fail("batch [%d,%d] does not match an appended batch (%+v)", h.BaseOffset, h.LastOffset(), orig)
		return
	}
	var oh BatchHeader
	ParseBatchHeader(orig.stored, &oh)
	if h.ProducerID != oh.ProducerID || h.ProducerEpoch != oh.ProducerEpoch || h.PartitionLeaderEpoch != oh.PartitionLeaderEpoch ||
		h.Attributes&(AttrLogAppendTime|AttrTransactional|AttrControl) != oh.Attributes&(AttrLogAppendTime|AttrTransactional|AttrControl) {
		m.fail("batch [%d,%d] header %+v, appended %+v", h.BaseOffset, h.LastOffset(), *h, oh)
	}
	if h.BaseOffset == oh.BaseOffset && h.RecordCount == oh.RecordCount && h.Attributes&AttrDeleteHorizon == 0 && !bytes.Equal(b, orig.stored) {
		m.fail("batch at %d keeps every record but is not byte-for-byte the appended one", h.BaseOffset)
	}
	if h.Attributes&AttrDeleteHorizon != 0 && !orig.tombstones {
		m.fail("batch at %d has a delete horizon but no tombstone was appended in it", h.BaseOffset)
	}
}

// origBatch returns the appended batch holding offset off.
func (m *compactModel) origBatch(off Offset) *cmBatch {
	if r := m.recs[off]; r != nil {
		return m.batches[r.base]
	}
	return nil
}

// noteHorizon records the delete horizon of a surviving tombstone and checks it never changes
// and was set by a pass: the pass's time plus delete.retention.ms.
func (m *compactModel) noteHorizon(off Offset, h *BatchHeader, pass *CompactStats) {
	if h.Attributes&AttrDeleteHorizon == 0 {
		if _, ok := m.horizons[off]; ok {
			m.fail("tombstone at %d lost its delete horizon", off)
		}
		return
	}
	hz, ok := m.horizons[off]
	switch {
	case ok && hz.at != h.BaseTimestamp:
		m.fail("tombstone at %d: delete horizon moved from %d to %d", off, hz.at, h.BaseTimestamp)
	case ok:
	case pass == nil || h.BaseTimestamp != m.lastPass+m.cfg.DeleteRetentionMs:
		m.fail("tombstone at %d: new delete horizon %d outside a pass (last at %d + %d)", off, h.BaseTimestamp, m.lastPass, m.cfg.DeleteRetentionMs)
	default:
		m.horizons[off] = cmHorizon{at: h.BaseTimestamp, pass: m.passes}
	}
}

// checkLatest: the latest record of every key is present, unless it is a tombstone whose
// delete horizon had passed at a pass after the one that set it; after a complete pass, such
// tombstones below its end are gone.
func (m *compactModel) checkLatest(present map[Offset]bool, pass *CompactStats) {
	latest := map[string]*cmRecord{}
	for _, r := range m.recs {
		if r.off >= m.start && r.off < m.leo {
			if cur := latest[string(r.key)]; cur == nil || r.off > cur.off {
				latest[string(r.key)] = r
			}
		}
	}
	for k, r := range latest {
		hz, stamped := m.horizons[r.off]
		expired := stamped && m.passes > hz.pass && m.lastPass >= hz.at
		switch {
		case !present[r.off] && !(r.isTomb && expired):
			m.fail("latest record of %s at %d is missing (tombstone %v, horizon %+v seen %v, last pass %d)", k, r.off, r.isTomb, hz, stamped, m.lastPass)
		case present[r.off] && pass != nil && r.isTomb && expired && r.off < pass.EndOffset:
			m.fail("tombstone of %s at %d outlived its delete horizon %+v (pass at %d)", k, r.off, hz, m.lastPass)
		}
	}
}

// checkProducers: the last batch of every idempotent producer is still there, with its last
// offset, so the producer's last sequence survives.
func (m *compactModel) checkProducers(batches [][]byte) {
	last := map[int64]*cmBatch{}
	for _, b := range m.batches {
		if b.pid >= 0 && b.last >= m.start && !m.truncated[b.pid] && (last[b.pid] == nil || b.last > last[b.pid].last) {
			last[b.pid] = b
		}
	}
	found := map[int64]bool{}
	var h BatchHeader
	for _, b := range batches {
		ParseBatchHeader(b, &h)
		if lb := last[h.ProducerID]; lb != nil && h.LastOffset() == lb.last {
			found[h.ProducerID] = true
		}
	}
	for pid, b := range last {
		if !found[pid] {
			m.fail("last batch [%d,%d] of producer %d is gone", b.base, b.last, pid)
		}
	}
}

// checkSegments: every segment's batches lie in [base, next), and only the active segment may
// be empty... except a first segment emptied by DeleteRecords-era history (never by the cleaner).
func (m *compactModel) checkSegments() {
	m.l.mu.RLock()
	defer m.l.mu.RUnlock()
	var h BatchHeader
	for i, s := range m.l.segments {
		if err := s.load(); err != nil {
			m.fail("load segment %d: %v", s.base, err)
			return
		}
		b := s.bytes()
		if i > 0 && s.base != m.l.segments[i-1].next.Load() {
			m.fail("segment %d follows a segment ending at %d", s.base, m.l.segments[i-1].next.Load())
		}
		for pos := int64(0); headerAt(b, pos, &h); pos += int64(h.Size()) {
			if h.BaseOffset < s.base || h.LastOffset() >= s.next.Load() {
				m.fail("segment [%d,%d) holds batch [%d,%d]", s.base, s.next.Load(), h.BaseOffset, h.LastOffset())
			}
		}
		if len(b) == 0 && !s.active && i > 0 {
			m.fail("sealed segment %d is empty", s.base)
		}
	}
}
