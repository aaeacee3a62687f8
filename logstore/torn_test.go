package logstore

// Torn and corrupt batches. A log is built and closed; then, for every byte of one batch, the
// segment's .log file is cut there or the byte is flipped, and a copy of the log is reopened
// with a recovery point at or below that batch. Recovery keeps the longest prefix of batches,
// in file order, that are valid and whose offsets increase, cuts the log at the first batch that
// is not, and deletes every later segment. What it can detect depends on the field (batch.go):
//
//	bytes  field                 protected by  recovery must
//	0-7    BaseOffset            nothing       lowered: cut there (offsets would go back).
//	                                           raised: keep it. It is indistinguishable from a
//	                                           gap a follower may write (AppendAsFollower takes
//	                                           base > end), so the log end follows it and any
//	                                           later batch, now overlapping it, is cut. Raised
//	                                           past the segment's 32-bit relative offsets: cut.
//	8-11   BatchLength           CRC range     cut (CRC mismatch, or it runs past the data)
//	12-15  PartitionLeaderEpoch  nothing       keep it, as flipped: undetectable
//	16     Magic                 check         cut
//	17-20  CRC                   itself        cut
//	21-    attributes…records    CRC           cut
//
// After each recovery the test checks the exact batches (byte for byte, through Read and the
// bytes sendfile would send), the log end offset, the segment files left, point reads through
// the rebuilt offset index, that an append lands at the log end and reads back, and that a
// clean reopen shows the same log (no stale bytes come back).

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// tornBatch is one batch of the fixture as stored.
type tornBatch struct {
	seg        int   // index of its segment
	pos        int64 // file position in the segment
	base, last Offset
	data       []byte
}

// tornImage is a closed log's files plus what they hold.
type tornImage struct {
	name     string
	cfg      Config
	files    map[string][]byte
	segBases []Offset
	batches  []tornBatch
	leo      Offset
}

func (img *tornImage) logName(seg int) string {
	return fmt.Sprintf("%020d%s", img.segBases[seg], logSuffix)
}

// tornWant is what recovery must leave.
type tornWant struct {
	batches [][]byte
	leo     Offset
	segs    int
}

// tornBuild appends groups[i] batches to segment i (rolling between groups) and closes the log.
// With bigLast the last batch is ~5 KiB, so it spans a page boundary.
func tornBuild(t *testing.T, name string, cfg Config, groups []int, bigLast bool) *tornImage {
	t.Helper()
	dir := t.TempDir()
	l, err := Open(dir, cfg, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, uint64(len(groups))))
	img := &tornImage{name: name, cfg: cfg, files: map[string][]byte{}}
	epoch := int32(3)
	total := 0
	for _, n := range groups {
		total += n
	}
	for g, n := range groups {
		if g > 0 {
			if err := l.Roll(); err != nil {
				t.Fatal(err)
			}
		}
		img.segBases = append(img.segBases, l.LogEndOffset())
		pos := int64(0)
		for i := 0; i < n; i++ {
			base := l.LogEndOffset()
			count, size := 1+rng.IntN(5), 20+rng.IntN(50)
			if bigLast && len(img.batches) == total-1 {
				count, size = 40, 120
			}
			spec := BatchSpec{BaseTimestamp: 1_700_000_000_000 + 10*base, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, PartitionLeaderEpoch: -1}
			for j := 0; j < count; j++ {
				v := make([]byte, size)
				for k := range v {
					v[k] = byte(rng.Uint32())
				}
				r := Record{Value: v, TimestampDelta: int64(j)}
				if j%2 == 0 {
					r.Key = []byte(fmt.Sprintf("key-%d", base+int64(j)))
				}
				spec.Records = append(spec.Records, r)
			}
			var info AppendInfo
			if err := l.AppendAsLeader(AppendBatch(nil, spec), epoch, false, &info); err != nil {
				t.Fatal(err)
			}
			spec.BaseOffset, spec.PartitionLeaderEpoch = base, epoch
			data := AppendBatch(nil, spec)
			img.batches = append(img.batches, tornBatch{seg: g, pos: pos, base: base, last: base + int64(count) - 1, data: data})
			pos += int64(len(data))
			if rng.IntN(3) == 0 {
				epoch++
			}
		}
	}
	img.leo = l.LogEndOffset()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		img.files[e.Name()] = b
	}
	// The fixture is what it claims: each .log file is its batches, back to back.
	for s := range img.segBases {
		var want []byte
		for _, b := range img.batches {
			if b.seg == s {
				want = append(want, b.data...)
			}
		}
		if !bytes.Equal(img.files[img.logName(s)], want) {
			t.Fatalf("fixture %s: segment %d file is %d bytes, its batches %d", name, s, len(img.files[img.logName(s)]), len(want))
		}
	}
	return img
}

// tornFixtures returns the logs whose last batch is damaged: one segment and three, index
// interval 1 and 4096; the long variant adds a last batch that spans a page boundary.
func tornFixtures(t *testing.T) []*tornImage {
	c1 := DefaultConfig()
	c1.IndexIntervalBytes, c1.PreallocateBytes = 1, 64<<10
	c4096 := c1
	c4096.IndexIntervalBytes = 4096
	out := []*tornImage{
		tornBuild(t, "one-segment/interval-1", c1, []int{6}, false),
		tornBuild(t, "three-segments/interval-4096", c4096, []int{4, 5, 3}, false),
	}
	if crashChaosLong() {
		out = append(out,
			tornBuild(t, "one-segment/interval-4096", c4096, []int{6}, false),
			tornBuild(t, "three-segments/interval-1", c1, []int{4, 5, 3}, false),
			tornBuild(t, "big-last-batch/interval-1", c1, []int{8}, true),
			tornBuild(t, "big-last-batch/interval-4096", c4096, []int{2, 8}, true),
		)
	}
	return out
}

// tornPrefix is recovery cut at batch k: the batches before it, the log ending at its base,
// its segment the last.
func tornPrefix(img *tornImage, k int) tornWant {
	w := tornWant{leo: img.batches[k].base, segs: img.batches[k].seg + 1}
	for _, b := range img.batches[:k] {
		w.batches = append(w.batches, b.data)
	}
	return w
}

// tornExpectFlip is what recovery must leave when byte p of batch k reads as damaged[p]
// (see the table in the file comment). It does not consult CheckBatch: the expectation must
// not come from the code under test.
func tornExpectFlip(img *tornImage, k, p int, damaged []byte) tornWant {
	b := img.batches[k]
	switch {
	case p < 8:
		base := int64(binary.BigEndian.Uint64(damaged))
		if base < b.base || base+(b.last-b.base)-img.segBases[b.seg] > math.MaxUint32 {
			return tornPrefix(img, k)
		}
		w := tornPrefix(img, k)
		w.batches = append(w.batches, damaged)
		w.leo = base + (b.last - b.base) + 1
		return w
	case p >= 12 && p < 16:
		w := tornWant{leo: img.leo, segs: len(img.segBases)}
		for i, o := range img.batches {
			if i == k {
				w.batches = append(w.batches, damaged)
			} else {
				w.batches = append(w.batches, o.data)
			}
		}
		return w
	default:
		return tornPrefix(img, k)
	}
}

// tornField names the header field at byte p of a batch.
func tornField(p int) string {
	switch {
	case p < 8:
		return "BaseOffset"
	case p < 12:
		return "BatchLength"
	case p < 16:
		return "PartitionLeaderEpoch"
	case p < 17:
		return "Magic"
	case p < 21:
		return "CRC"
	case p < BatchHeaderSize:
		return "header (CRC-covered)"
	}
	return "records"
}

// tornRunner runs damaged copies of an image and collects failures, printing the first few in
// full and a summary of the rest.
type tornRunner struct {
	t        *testing.T
	root     string
	n        int
	failures []string
}

func newTornRunner(t *testing.T) *tornRunner { return &tornRunner{t: t, root: tornScratch(t)} }

// tornScratch returns a folder for the damaged copies: on /dev/shm (tmpfs) when there is one,
// since every case closes a log and its fdatasyncs on a disk would dominate the runtime; the
// file system plays no part in what these tests check.
func tornScratch(t *testing.T) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "spate-torn-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

func (r *tornRunner) fail(desc string, err error) {
	r.failures = append(r.failures, desc)
	if len(r.failures) <= 12 {
		r.t.Errorf("%s: %v", desc, err)
	}
}

func (r *tornRunner) report() {
	if len(r.failures) > 12 {
		r.t.Errorf("%d failing cases in all (%d not shown): %s", len(r.failures), len(r.failures)-12, strings.Join(r.failures[12:min(len(r.failures), 60)], "; "))
	}
	r.t.Logf("%d cases, %d failing", r.n, len(r.failures))
}

// run writes the image with segment seg's .log file replaced by logData, opens it with
// recovery point rp and checks the outcome against want.
func (r *tornRunner) run(desc string, img *tornImage, seg int, logData []byte, rp Offset, want tornWant) {
	r.n++
	dir := filepath.Join(r.root, fmt.Sprintf("case-%d", r.n))
	defer os.RemoveAll(dir)
	if err := r.runCase(dir, img, seg, logData, rp, want); err != nil {
		r.fail(fmt.Sprintf("%s %s (recovery point %d)", img.name, desc, rp), err)
	}
}

func (r *tornRunner) runCase(dir string, img *tornImage, seg int, logData []byte, rp Offset, want tornWant) (err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, b := range img.files {
		if name == img.logName(seg) {
			b = logData
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	var l *Log
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p) // the log may be wedged: leave it
			return
		}
		if l != nil {
			l.Close()
		}
	}()
	l, err = Open(dir, img.cfg, OpenOptions{RecoveryPoint: rp})
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	if err := tornCheck(l, want.batches, want.leo); err != nil {
		return fmt.Errorf("after recovery: %w", err)
	}
	if n := l.NumSegments(); n != want.segs {
		return fmt.Errorf("after recovery: %d segments, want %d", n, want.segs)
	}
	var logs []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), logSuffix) {
			logs = append(logs, e.Name())
		}
	}
	sort.Strings(logs)
	var wantLogs []string
	for s := 0; s < want.segs; s++ {
		wantLogs = append(wantLogs, img.logName(s))
	}
	if strings.Join(logs, " ") != strings.Join(wantLogs, " ") {
		return fmt.Errorf("after recovery: segment files %v, want %v", logs, wantLogs)
	}

	// An append lands at the log end and reads back, also after a clean reopen.
	base := l.LogEndOffset()
	spec := BatchSpec{BaseTimestamp: 1_800_000_000_000, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, PartitionLeaderEpoch: -1,
		Records: []Record{{Value: []byte("after recovery")}, {Key: []byte("k"), Value: bytes.Repeat([]byte("z"), 90)}}}
	var info AppendInfo
	if err := l.AppendAsLeader(AppendBatch(nil, spec), 99, false, &info); err != nil {
		return fmt.Errorf("append after recovery: %w", err)
	}
	if info.FirstOffset != base {
		return fmt.Errorf("append after recovery got offset %d, want the log end %d", info.FirstOffset, base)
	}
	spec.BaseOffset, spec.PartitionLeaderEpoch = base, 99
	all := append(append([][]byte(nil), want.batches...), AppendBatch(nil, spec))
	if err := tornCheck(l, all, base+2); err != nil {
		return fmt.Errorf("after an append: %w", err)
	}
	if err := l.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	l = nil
	l, err = Open(dir, img.cfg, OpenOptions{})
	if err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	if err := tornCheck(l, all, base+2); err != nil {
		return fmt.Errorf("after a clean reopen: %w", err)
	}
	return nil
}

// tornCheck compares the whole log with want, and reads each batch at its first and last
// offset through the offset index.
func tornCheck(l *Log, want [][]byte, leo Offset) error {
	if got := l.LogEndOffset(); got != leo {
		return fmt.Errorf("log end offset %d, want %d", got, leo)
	}
	if err := crashSameBatches(l, want); err != nil {
		return err
	}
	return crashPointReads(l, want, len(want))
}

// tornPatterns are the XOR masks applied at byte p: all three on header bytes (so base offsets
// go both up and down and sign bits flip), one on record bytes unless the long variant runs.
func tornPatterns(p int) []byte {
	all := []byte{0xff, 0x80, 0x01}
	if p < BatchHeaderSize || crashChaosLong() {
		return all
	}
	return all[p%3 : p%3+1]
}

func TestTornTailTruncatedAtEveryByte(t *testing.T) {
	r := newTornRunner(t)
	for _, img := range tornFixtures(t) {
		k := len(img.batches) - 1
		b := img.batches[k]
		file := img.files[img.logName(b.seg)]
		for p := 0; p < len(b.data); p++ {
			cut := file[:b.pos+int64(p)]
			for _, rp := range []Offset{0, b.base} {
				r.run(fmt.Sprintf("last batch [%d,%d] cut at byte %d (%s)", b.base, b.last, p, tornField(p)), img, b.seg, cut, rp, tornPrefix(img, k))
			}
		}
	}
	r.report()
}

func TestCorruptTailTruncatedAtEveryByte(t *testing.T) {
	r := newTornRunner(t)
	for _, img := range tornFixtures(t) {
		k := len(img.batches) - 1
		tornFlipEveryByte(r, img, k)
	}
	r.report()
}

// TestCorruptMiddleSegmentTruncatesLaterSegments damages a batch of the middle one of three
// segments — one inside it and its last one — by flips and cuts at every byte: the log must end
// at that batch (by the rules of the file comment), with the later segments deleted.
func TestCorruptMiddleSegmentTruncatesLaterSegments(t *testing.T) {
	cfg := DefaultConfig()
	cfg.IndexIntervalBytes, cfg.PreallocateBytes = 1, 64<<10
	img := tornBuild(t, "middle-segment/interval-1", cfg, []int{4, 5, 4}, false)
	r := newTornRunner(t)
	for _, k := range []int{4 + 2, 4 + 4} { // the third and the last batch of segment 1
		tornFlipEveryByte(r, img, k)
		b := img.batches[k]
		file := img.files[img.logName(b.seg)]
		for p := 1; p < len(b.data); p++ {
			if p >= BatchHeaderSize && p%5 != 0 && !crashChaosLong() {
				continue
			}
			for _, rp := range []Offset{0, b.base} {
				r.run(fmt.Sprintf("batch [%d,%d] of segment %d cut at byte %d (%s)", b.base, b.last, b.seg, p, tornField(p)), img, b.seg, file[:b.pos+int64(p)], rp, tornPrefix(img, k))
			}
		}
	}
	r.report()
}

// tornFlipEveryByte flips every byte of batch k, with recovery points 0 and the batch's base.
func tornFlipEveryByte(r *tornRunner, img *tornImage, k int) {
	b := img.batches[k]
	file := img.files[img.logName(b.seg)]
	for p := 0; p < len(b.data); p++ {
		for _, x := range tornPatterns(p) {
			data := bytes.Clone(file)
			data[b.pos+int64(p)] ^= x
			damaged := data[b.pos : b.pos+int64(len(b.data))]
			want := tornExpectFlip(img, k, p, damaged)
			for _, rp := range []Offset{0, b.base} {
				r.run(fmt.Sprintf("batch [%d,%d] of segment %d byte %d (%s) ^ %#02x", b.base, b.last, b.seg, p, tornField(p), x), img, b.seg, data, rp, want)
			}
		}
	}
}

// TestReopenKeepsFollowerBatchPastRelativeOffsetRange: a follower may append a batch whose
// offsets lie more than 2^32 past the active segment's base (AppendAsFollower accepts any base
// >= the log end). The batch must go into a segment whose 32-bit relative offsets can hold it,
// so that recovery, which cuts at a batch that does not fit its segment, keeps it: an appended,
// synced and cleanly closed batch must survive a reopen.
func TestReopenKeepsFollowerBatchPastRelativeOffsetRange(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.PreallocateBytes = 64 << 10
	l, err := Open(dir, cfg, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	far := Offset(1)<<33 + 5
	want := [][]byte{
		AppendBatch(nil, BatchSpec{BaseOffset: 0, PartitionLeaderEpoch: 1, Records: []Record{{Value: []byte("near")}}}),
		AppendBatch(nil, BatchSpec{BaseOffset: far, PartitionLeaderEpoch: 1, Records: []Record{{Value: []byte("far")}, {Value: []byte("away")}}}),
	}
	var info AppendInfo
	for _, b := range want {
		if err := l.AppendAsFollower(b, &info); err != nil {
			t.Fatal(err)
		}
	}
	if err := crashSameBatches(l, want); err != nil {
		t.Fatalf("before the reopen: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, rp := range []Offset{0, far + 2} {
		l, err := Open(dir, cfg, OpenOptions{RecoveryPoint: rp})
		if err != nil {
			t.Fatal(err)
		}
		if leo := l.LogEndOffset(); leo != far+2 {
			t.Errorf("reopened with recovery point %d: log end offset %d, want %d", rp, leo, far+2)
		}
		if err := crashSameBatches(l, want); err != nil {
			t.Errorf("reopened with recovery point %d: %v", rp, err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
