package logstore

// Crash and full-disk tests.
//
// TestCrashKill9RecoversSyncedBatches re-executes this test binary as a child process
// (TestCrashKill9Child) that appends seeded batches and syncs every few appends, reporting each
// synced log end offset on stdout. The parent kills it with SIGKILL at a seeded moment, recovers
// copies of the log with and without the reported recovery point, and checks the recovered log
// byte for byte against the batches it recomputes from the seed.
//
// A SIGKILL keeps the page cache, so in practice everything the child wrote survives. The hard
// requirement is the synced one (a power loss may lose the rest); what is recovered must still
// be an exact prefix of what was appended, and nothing corrupt or partial may ever be read.
//
// Replay: go test ./logstore -run '^TestCrashKill9RecoversSyncedBatches$' -crash.seed N
// replays the workloads and the kill points (the sync count and delay after which the child is
// killed); where exactly the kill lands in the child's code still depends on scheduling.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var crashSeedFlag = flag.Uint64("crash.seed", 0, "replay TestCrashKill9RecoversSyncedBatches with this seed")

const (
	crashChildName    = "TestCrashKill9Child"
	crashChildDirEnv  = "SPATE_CRASH_CHILD_DIR"  // child mode: the log folder
	crashChildSeedEnv = "SPATE_CRASH_CHILD_SEED" // child mode: the round's seed
	crashBaseTs       = int64(1_700_000_000_000)
)

// crashChaosLong reports whether the long variants run (make chaos sets SPATE_CHAOS=long).
func crashChaosLong() bool { return os.Getenv("SPATE_CHAOS") == "long" }

// crashMix is splitmix64: seeds for rounds and record bytes derived from one number.
func crashMix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// crashBatch is one batch as the log must store it: offsets assigned, leader epoch stamped.
type crashBatch struct {
	base, last Offset
	stored     []byte
}

// crashWorkload is the sequence of appends the child makes and the parent recomputes. Batch
// shapes come from a PCG seeded with the round's seed; each record's key, value and header are
// derived from its offset.
type crashWorkload struct {
	seed      uint64
	rng       *rand.Rand
	cfg       Config
	syncEvery int // the child syncs after every syncEvery-th append
	next      Offset
	epoch     int32
	batches   []crashBatch // what the generated appends must be stored as, in order
}

func newCrashWorkload(seed uint64) *crashWorkload {
	rng := rand.New(rand.NewPCG(seed, 0xc0ffee))
	w := &crashWorkload{seed: seed, rng: rng, epoch: int32(rng.IntN(5))}
	w.cfg = DefaultConfig()
	w.cfg.SegmentBytes = 64 << 10
	w.cfg.IndexIntervalBytes = []int64{1, 4096}[rng.IntN(2)]
	w.cfg.PreallocateBytes = []int64{4 << 10, 16 << 10, 1 << 20}[rng.IntN(3)]
	w.syncEvery = 1 + rng.IntN(8)
	return w
}

// crashRecord derives record i of the batch at base from its offset.
func (w *crashWorkload) crashRecord(off Offset, i int) Record {
	h := crashMix(w.seed ^ uint64(off)*0x100000001b3)
	v := make([]byte, int(h%160))
	for j := 0; j < len(v); j += 8 {
		h = crashMix(h)
		var word [8]byte
		binary.LittleEndian.PutUint64(word[:], h)
		copy(v[j:], word[:])
	}
	r := Record{Value: v, TimestampDelta: int64(i)}
	if off%3 == 0 {
		r.Key = []byte(fmt.Sprintf("key-%d", off%11))
	}
	if off%17 == 0 {
		r.Headers = []RecordHeader{{Key: "h", Value: []byte(strconv.FormatInt(off, 10))}}
	}
	return r
}

// nextAppend returns the records of the next AppendAsLeader call (as a producer sends them:
// base offset 0, leader epoch -1) and the epoch to append them with, and records how they must
// be stored in w.batches.
func (w *crashWorkload) nextAppend() (records []byte, epoch int32) {
	if w.rng.IntN(20) == 0 {
		w.epoch++
	}
	n := 1
	if w.rng.IntN(4) == 0 {
		n = 2 + w.rng.IntN(2)
	}
	// A batch is at most 120 records of at most ~200 bytes (~24 KiB); an append stays well
	// under segment.bytes (64 KiB).
	for i := 0; i < n && len(records) < 16<<10; i++ {
		count := 1 + w.rng.IntN(16)
		if w.rng.IntN(10) == 0 {
			count = 1 + w.rng.IntN(120)
		}
		spec := BatchSpec{
			BaseTimestamp: crashBaseTs + w.next, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1,
			PartitionLeaderEpoch: -1,
		}
		for j := 0; j < count; j++ {
			spec.Records = append(spec.Records, w.crashRecord(w.next+int64(j), j))
		}
		records = AppendBatch(records, spec)
		spec.BaseOffset, spec.PartitionLeaderEpoch = w.next, w.epoch
		w.batches = append(w.batches, crashBatch{base: w.next, last: w.next + int64(count) - 1, stored: AppendBatch(nil, spec)})
		w.next += int64(count)
	}
	return records, w.epoch
}

// expectBatch returns expected batch i, generating appends as needed.
func (w *crashWorkload) expectBatch(i int) crashBatch {
	for len(w.batches) <= i {
		w.nextAppend()
	}
	return w.batches[i]
}

// TestCrashKill9Child is the child process of TestCrashKill9RecoversSyncedBatches; run directly
// it does nothing.
func TestCrashKill9Child(t *testing.T) {
	dir := os.Getenv(crashChildDirEnv)
	if dir == "" {
		t.Skip("helper process of TestCrashKill9RecoversSyncedBatches")
	}
	seed, err := strconv.ParseUint(os.Getenv(crashChildSeedEnv), 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: bad seed:", err)
		os.Exit(2)
	}
	w := newCrashWorkload(seed)
	l, err := Open(dir, w.cfg, OpenOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open:", err)
		os.Exit(2)
	}
	report := func(format string, args ...any) {
		// One write(2) per line: a line the child wrote is a fact the parent may rely on.
		if _, err := os.Stdout.WriteString(fmt.Sprintf(format, args...)); err != nil {
			os.Exit(2)
		}
	}
	report("ready\n")
	var info AppendInfo
	deadline := time.Now().Add(60 * time.Second) // never outlive a parent that failed to kill
	for appends := 1; time.Now().Before(deadline); appends++ {
		records, epoch := w.nextAppend()
		w.batches = w.batches[:0] // the child needs no expectations
		if err := l.AppendAsLeader(records, epoch, false, &info); err != nil {
			fmt.Fprintln(os.Stderr, "child: append:", err)
			os.Exit(3)
		}
		report("A %d\n", info.LastOffset+1)
		if appends%w.syncEvery == 0 {
			if err := l.Sync(); err != nil {
				fmt.Fprintln(os.Stderr, "child: sync:", err)
				os.Exit(3)
			}
			report("S %d\n", l.RecoveryPoint())
		}
	}
	fmt.Fprintln(os.Stderr, "child: not killed within 60s")
	os.Exit(4)
}

func TestCrashKill9RecoversSyncedBatches(t *testing.T) {
	seed := *crashSeedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	rounds := 5
	if crashChaosLong() {
		rounds = 50
	}
	t.Logf("seed %d, %d rounds; replay: go test ./logstore -run '^TestCrashKill9RecoversSyncedBatches$' -crash.seed %d", seed, rounds, seed)
	for i := 0; i < rounds; i++ {
		rs := crashMix(seed + uint64(i))
		t.Run(fmt.Sprintf("round%02d", i), func(t *testing.T) {
			crashRound(t, rs)
			if t.Failed() {
				t.Logf("failing round seed %d (base seed %d, round %d)", rs, seed, i)
			}
		})
	}
}

// crashChildRun starts the child on dir, kills it with SIGKILL after it has reported
// killAfterSyncs syncs and delay more, and returns the last synced and appended log end
// offsets it reported (-1 if none).
func crashChildRun(t *testing.T, dir string, seed uint64, killAfterSyncs int, delay time.Duration) (synced, acked Offset) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+crashChildName+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildDirEnv+"="+dir, crashChildSeedEnv+"="+strconv.FormatUint(seed, 10))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	killed := false
	kill := func() {
		if !killed {
			killed = true
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Errorf("SIGKILL child %d: %v", cmd.Process.Pid, err)
			}
		}
	}
	lines := make(chan string, 4096)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	synced, acked = -1, -1
	syncs, ready := 0, false
	parse := func(line string) {
		var v Offset
		switch {
		case line == "ready":
			ready = true
		case strings.HasPrefix(line, "A "):
			v, _ = strconv.ParseInt(line[2:], 10, 64)
			if v < acked {
				t.Errorf("child reported appended end %d after %d", v, acked)
			}
			acked = v
		case strings.HasPrefix(line, "S "):
			v, _ = strconv.ParseInt(line[2:], 10, 64)
			if v < synced || v > acked {
				t.Errorf("child reported synced end %d after %d (appended %d)", v, synced, acked)
			}
			synced = v
			syncs++
		}
	}
	timeout := time.NewTimer(2 * time.Minute)
	defer timeout.Stop()
	exited := false
	for !exited && !(ready && syncs >= killAfterSyncs) {
		select {
		case line, ok := <-lines:
			if !ok {
				exited = true
				break
			}
			parse(line)
		case <-timeout.C:
			kill()
			for range lines {
			}
			cmd.Wait()
			t.Fatalf("child made no progress in 2 minutes (%d syncs); stderr:\n%s", syncs, stderr.String())
		}
	}
	if !exited {
		time.Sleep(delay)
		kill()
	}
	for line := range lines {
		parse(line)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !errors.As(err, &ee) || !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of our SIGKILL: %v; stderr:\n%s", err, stderr.String())
	}
	return synced, acked
}

func crashRound(t *testing.T, seed uint64) {
	w := newCrashWorkload(seed)
	krng := rand.New(rand.NewPCG(seed, 0xdead))
	killAfterSyncs := 1 + krng.IntN(60)
	if crashChaosLong() {
		killAfterSyncs = 1 + krng.IntN(400)
	}
	if krng.IntN(8) == 0 {
		killAfterSyncs = 0 // possibly before the first sync
	}
	delay := time.Duration(krng.IntN(5000)) * time.Microsecond
	root := t.TempDir()
	image := filepath.Join(root, "image")
	synced, acked := crashChildRun(t, image, seed, killAfterSyncs, delay)
	t.Logf("seed %d: segment.bytes %d, index.interval.bytes %d, preallocate %d, sync every %d; killed %v after %d syncs: synced end %d, appended end %d",
		seed, w.cfg.SegmentBytes, w.cfg.IndexIntervalBytes, w.cfg.PreallocateBytes, w.syncEvery, delay, killAfterSyncs, synced, acked)
	defer func() {
		if t.Failed() {
			keep, err := os.MkdirTemp("", "spate-crash-image-")
			if err == nil {
				err = crashCopyDir(image, keep)
			}
			t.Logf("crash image kept in %s (%v)", keep, err)
		}
	}()
	rps := []Offset{0}
	if synced > 0 {
		rps = append(rps, synced)
	}
	var leos []Offset
	for _, rp := range rps {
		dir := filepath.Join(root, fmt.Sprintf("recover-rp%d", rp))
		if err := crashCopyDir(image, dir); err != nil {
			t.Fatal(err)
		}
		leo := crashVerifyRecovery(t, dir, w, rp, max(synced, 0))
		leos = append(leos, leo)
		if leo < acked {
			// Not a requirement (see the file comment), but worth knowing.
			t.Logf("NOTE: recovery point %d recovered end %d, below the last acknowledged append's end %d", rp, leo, acked)
		}
	}
	stray, err := crashStrayBytes(image, w, leos[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("recovered log end offsets %v with recovery points %v; %d non-zero bytes past the recovered end (a write the kill cut short)", leos, rps, stray)
	// Recovery is a function of the bytes: when everything below the recovery point is valid,
	// where the scan starts must not change what is recovered.
	for i := range leos {
		if leos[i] != leos[0] {
			t.Errorf("recovery points %v recovered different log end offsets %v", rps, leos)
			break
		}
	}
}

// crashStrayBytes counts the non-zero bytes that the crash image holds past the recovered end
// in its last segment: a batch the kill interrupted while it was being copied.
func crashStrayBytes(image string, w *crashWorkload, leo Offset) (int, error) {
	ents, err := os.ReadDir(image)
	if err != nil {
		return 0, err
	}
	segBase := Offset(-1)
	for _, e := range ents {
		if base, ok := parseSegmentName(e.Name(), logSuffix); ok && base <= leo && base > segBase {
			segBase = base
		}
	}
	if segBase < 0 {
		return 0, fmt.Errorf("no segment at or below %d in %s", leo, image)
	}
	b, err := os.ReadFile(segmentName(image, segBase, logSuffix))
	if err != nil {
		return 0, err
	}
	valid := 0
	for _, cb := range w.batches {
		if cb.base >= segBase && cb.last < leo {
			valid += len(cb.stored)
		}
	}
	n := 0
	for _, c := range b[min(valid, len(b)):] {
		if c != 0 {
			n++
		}
	}
	return n, nil
}

// crashVerifyRecovery opens a copy of the crash image with recovery point rp and checks it:
// at least the synced batches, an exact prefix of what was appended, valid batches only,
// dense offsets, point reads through the rebuilt indexes, then appends after recovery that read
// back, also after a clean reopen. It returns the recovered log end offset.
func crashVerifyRecovery(t *testing.T, dir string, w *crashWorkload, rp, synced Offset) Offset {
	t.Helper()
	l, err := Open(dir, w.cfg, OpenOptions{RecoveryPoint: rp})
	if err != nil {
		t.Fatalf("recovery point %d: open: %v", rp, err)
	}
	defer func() { l.Close() }()
	leo := l.LogEndOffset()
	if l.LogStartOffset() != 0 {
		t.Errorf("recovery point %d: log start offset %d, want 0", rp, l.LogStartOffset())
	}
	if leo < synced {
		t.Errorf("recovery point %d: log end offset %d is below the synced end %d: synced batches lost", rp, leo, synced)
	}
	got, err := crashReadLog(l, 64<<10)
	if err != nil {
		t.Fatalf("recovery point %d: %v", rp, err)
	}
	end := Offset(0)
	for i, b := range got {
		want := w.expectBatch(i)
		if !bytes.Equal(b, want.stored) {
			t.Fatalf("recovery point %d: batch %d (offset %d): %s", rp, i, want.base, crashDiff(b, want.stored))
		}
		end = want.last + 1
	}
	if end != leo {
		t.Fatalf("recovery point %d: batches read end at %d, log end offset %d", rp, end, leo)
	}
	if err := crashPointReads(l, got, 200); err != nil {
		t.Errorf("recovery point %d: %v", rp, err)
	}

	// The recovered log takes appends, and they read back, also after a reopen.
	var after [][]byte
	for i := 0; i < 3; i++ {
		base := l.LogEndOffset()
		spec := BatchSpec{BaseTimestamp: crashBaseTs + base, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1,
			Records: []Record{{Value: []byte(fmt.Sprintf("after-crash-%d", base))}, {Key: []byte("k"), Value: bytes.Repeat([]byte{byte(i)}, 300)}}}
		prod := spec
		prod.PartitionLeaderEpoch = -1
		var info AppendInfo
		if err := l.AppendAsLeader(AppendBatch(nil, prod), 1000, false, &info); err != nil {
			t.Fatalf("recovery point %d: append after recovery: %v", rp, err)
		}
		if info.FirstOffset != base || info.LastOffset != base+1 {
			t.Errorf("recovery point %d: append after recovery got offsets [%d,%d], want [%d,%d]", rp, info.FirstOffset, info.LastOffset, base, base+1)
		}
		spec.BaseOffset, spec.PartitionLeaderEpoch = base, 1000
		after = append(after, AppendBatch(nil, spec))
	}
	all := append(append([][]byte(nil), got...), after...)
	if err := crashSameBatches(l, all); err != nil {
		t.Errorf("recovery point %d: after appends: %v", rp, err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("recovery point %d: close: %v", rp, err)
	}
	l, err = Open(dir, w.cfg, OpenOptions{})
	if err != nil {
		t.Fatalf("recovery point %d: reopen: %v", rp, err)
	}
	if err := crashSameBatches(l, all); err != nil {
		t.Errorf("recovery point %d: after a clean reopen: %v", rp, err)
	}
	return leo
}

// crashSameBatches reads the whole log and compares it with want.
func crashSameBatches(l *Log, want [][]byte) error {
	got, err := crashReadLog(l, 1<<20)
	if err != nil {
		return err
	}
	if len(got) != len(want) {
		return fmt.Errorf("%d batches, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			return fmt.Errorf("batch %d: %s", i, crashDiff(got[i], want[i]))
		}
	}
	return nil
}

func crashDiff(got, want []byte) string {
	for i := 0; i < min(len(got), len(want)); i++ {
		if got[i] != want[i] {
			return fmt.Sprintf("%d bytes, want %d; first difference at byte %d: %#x, want %#x", len(got), len(want), i, got[i], want[i])
		}
	}
	return fmt.Sprintf("%d bytes, want %d", len(got), len(want))
}

// crashReadLog reads the whole log with Read, maxBytes at a time, and checks what a consumer
// relies on: Read makes progress up to the log end offset; regions hold whole batches that
// pass CheckBatch, with increasing offsets; the bytes sendfile(2) would send (File at Pos) are
// the mapped view's. It returns copies of the batches.
func crashReadLog(l *Log, maxBytes int64) ([][]byte, error) {
	var res ReadResult
	defer res.Release()
	var out [][]byte
	off, leo := l.LogStartOffset(), l.LogEndOffset()
	next := Offset(math.MinInt64) // the lowest base offset the next batch may have
	for off < leo {
		if err := l.Read(off, maxBytes, leo, true, &res); err != nil {
			return out, fmt.Errorf("read at %d (end %d): %w", off, leo, err)
		}
		if len(res.Regions) == 0 || res.NextOffset <= off {
			return out, fmt.Errorf("read at %d (end %d) returned nothing (next %d)", off, leo, res.NextOffset)
		}
		for _, r := range res.Regions {
			buf := make([]byte, r.Len)
			if _, err := r.File.ReadAt(buf, r.Pos); err != nil {
				return out, fmt.Errorf("read at %d: pread of region [%d,+%d): %w", off, r.Pos, r.Len, err)
			}
			if !bytes.Equal(buf, r.Data) || int64(len(r.Data)) != r.Len {
				return out, fmt.Errorf("read at %d: file region [%d,+%d) differs from its mapped view", off, r.Pos, r.Len)
			}
			for rest := buf; len(rest) > 0; {
				var h BatchHeader
				if err := CheckBatch(rest, 0, &h); err != nil {
					return out, fmt.Errorf("read at %d returned an invalid batch at file position %d: %w", off, r.Pos+r.Len-int64(len(rest)), err)
				}
				if h.BaseOffset < next || h.LastOffset() < h.BaseOffset || (next == math.MinInt64 && h.LastOffset() < off) {
					return out, fmt.Errorf("read at %d returned batch [%d,%d] after offset %d", off, h.BaseOffset, h.LastOffset(), next-1)
				}
				out = append(out, rest[:h.Size():h.Size()])
				next = h.LastOffset() + 1
				rest = rest[h.Size():]
			}
		}
		if res.NextOffset != next {
			return out, fmt.Errorf("read at %d: next offset %d, batches end at %d", off, res.NextOffset, next)
		}
		off = res.NextOffset
		res.Release()
	}
	if len(out) > 0 && next != leo {
		return out, fmt.Errorf("batches end at %d, log end offset %d", next, leo)
	}
	return out, nil
}

// crashPointReads reads single batches (maxBytes 1, minOne) at the first and last offset of up
// to n of the batches (evenly spread): each read must start with exactly that batch, which the
// offset index must lead to.
func crashPointReads(l *Log, batches [][]byte, n int) error {
	var res ReadResult
	defer res.Release()
	step := max(1, len(batches)/max(n, 1))
	leo := l.LogEndOffset()
	for i := 0; i < len(batches); i += step {
		var h BatchHeader
		ParseBatchHeader(batches[i], &h)
		for _, off := range []Offset{h.BaseOffset, h.LastOffset()} {
			if err := l.Read(off, 1, leo, true, &res); err != nil {
				return fmt.Errorf("point read at %d: %w", off, err)
			}
			if res.FirstOffset != h.BaseOffset || len(res.Regions) == 0 || !bytes.Equal(res.Regions[0].Data, batches[i]) {
				return fmt.Errorf("point read at %d: first offset %d, want the batch at %d", off, res.FirstOffset, h.BaseOffset)
			}
			res.Release()
		}
	}
	return nil
}

// crashCopyDir copies the regular files of a log folder.
func crashCopyDir(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// TestCrashRecoveryPointCoversOnlySyncedData: the recovery point is the offset below which the
// log is on disk (log.go: "Everything below the recovery point was synced to disk"), and the
// next recovery trusts batch headers below it without checking CRCs. A log recovered after a
// crash holds batches that were never synced — they survived only in the page cache — so its
// recovery point must stay at the one it was opened with until a Sync (Kafka's LogLoader keeps
// min(recovery point checkpoint, log end offset) after an unclean shutdown for this reason).
//
// The crash is simulated by copying the folder of a live log: the copy holds exactly what a
// SIGKILL would leave. The second half plays out the failure this guards against: the owner
// checkpoints RecoveryPoint(), the machine loses power before anything is synced, and the
// unsynced page holding the tail batch's records comes back as zeros while its header page
// survived; reopening with the checkpointed recovery point must not serve that batch.
func TestCrashRecoveryPointCoversOnlySyncedData(t *testing.T) {
	root := t.TempDir()
	live := filepath.Join(root, "live")
	cfg := DefaultConfig()
	cfg.IndexIntervalBytes, cfg.PreallocateBytes = 4096, 64<<10
	l, err := Open(live, cfg, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { l.Close() }()
	var want [][]byte
	appendOne := func(values int) {
		base := l.LogEndOffset()
		spec := BatchSpec{BaseTimestamp: crashBaseTs + base, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, PartitionLeaderEpoch: -1}
		for i := 0; i < values; i++ {
			spec.Records = append(spec.Records, Record{Value: bytes.Repeat([]byte{byte(base + int64(i))}, 100)})
		}
		var info AppendInfo
		if err := l.AppendAsLeader(AppendBatch(nil, spec), 7, false, &info); err != nil {
			t.Fatal(err)
		}
		spec.BaseOffset, spec.PartitionLeaderEpoch = base, 7
		want = append(want, AppendBatch(nil, spec))
	}
	for i := 0; i < 5; i++ {
		appendOne(3)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	synced := l.RecoveryPoint()
	tailPos := int64(0)
	for _, b := range want {
		tailPos += int64(len(b))
	}
	appendOne(60) // ~6.5 KiB: its records run onto pages the header's page does not hold
	crashed := filepath.Join(root, "crashed")
	if err := crashCopyDir(live, crashed); err != nil {
		t.Fatal(err)
	}

	l2, err := Open(crashed, cfg, OpenOptions{RecoveryPoint: synced})
	if err != nil {
		t.Fatal(err)
	}
	if err := crashSameBatches(l2, want); err != nil {
		t.Fatalf("after the crash: %v", err)
	}
	checkpointed := l2.RecoveryPoint()
	if checkpointed > synced {
		t.Errorf("after recovering from a crash, RecoveryPoint() = %d, but only offsets below %d were synced; "+
			"the batches in between exist only in the page cache", checkpointed, synced)
	}
	// Power loss now: nothing since the crash was synced.
	lost := filepath.Join(root, "power-lost")
	if err := crashCopyDir(crashed, lost); err != nil {
		t.Fatal(err)
	}
	l2.Close()
	logFile := segmentName(lost, 0, logSuffix)
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	// The page holding the tail batch's header survived; the following pages did not.
	lostFrom := (tailPos + BatchHeaderSize + 4095) &^ 4095
	clear(b[lostFrom : tailPos+int64(len(want[len(want)-1]))])
	if err := os.WriteFile(logFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	l3, err := Open(lost, cfg, OpenOptions{RecoveryPoint: checkpointed})
	if err != nil {
		t.Fatal(err)
	}
	defer l3.Close()
	if _, err := crashReadLog(l3, 1<<20); err != nil {
		t.Errorf("reopened with the checkpointed recovery point %d after a power loss: %v", checkpointed, err)
	}
	if leo := l3.LogEndOffset(); leo != synced {
		t.Errorf("after the power loss the log ends at %d; want the synced end %d (the tail batch lost its records)", leo, synced)
	}
}

// TestAppendOnFullDiskReturnsError fills a 2 MiB tmpfs: the append that does not fit must
// fail with an error wrapping ENOSPC — never a SIGBUS from touching an unallocated page of the
// mapping — and everything appended before must read back intact, before and after a reopen.
// Needs root (CI runs the tests as root): a failed mount fails the test.
func TestAppendOnFullDiskReturnsError(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=2m"); err != nil {
		t.Fatalf("mount a 2 MiB tmpfs on %s: %v (this test needs root / CAP_SYS_ADMIN, as CI has)", mnt, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})
	// Ballast, removed later to show the log recovers once space is back.
	ballast := filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 256<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(mnt, "orders-0")
	cfg := DefaultConfig()
	cfg.SegmentBytes = 256 << 10
	cfg.PreallocateBytes = 8 << 10
	cfg.IndexIntervalBytes = 1
	l, err := Open(dir, cfg, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			l.Close()
		}
	})

	// A SIGBUS in this goroutine (the append's copy into the mapping) becomes a panic here
	// instead of killing the test binary.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("append on a full disk faulted instead of returning an error: %v", r)
		}
	}()

	rng := rand.New(rand.NewPCG(42, 43))
	var acked [][]byte // stored form of every acknowledged batch
	var failed []byte  // stored form of the batch whose append failed
	var appendErr error
	for i := 0; i < 10000 && appendErr == nil; i++ {
		base := l.LogEndOffset()
		spec := BatchSpec{BaseTimestamp: crashBaseTs + base, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, PartitionLeaderEpoch: -1}
		for j, n := 0, 1+rng.IntN(8); j < n; j++ {
			v := make([]byte, 200+rng.IntN(600))
			for k := range v {
				v[k] = byte(rng.Uint32())
			}
			spec.Records = append(spec.Records, Record{Value: v})
		}
		var info AppendInfo
		appendErr = l.AppendAsLeader(AppendBatch(nil, spec), 2, false, &info)
		spec.BaseOffset, spec.PartitionLeaderEpoch = base, 2
		if appendErr == nil {
			acked = append(acked, AppendBatch(nil, spec))
		} else {
			failed = AppendBatch(nil, spec)
		}
	}
	if appendErr == nil {
		t.Fatalf("appended %d batches to a 2 MiB file system without an error", len(acked))
	}
	t.Logf("append %d failed: %v", len(acked), appendErr)
	if !errors.Is(appendErr, syscall.ENOSPC) {
		t.Errorf("append error %v does not wrap ENOSPC", appendErr)
	}
	if CodeOf(appendErr) != CodeKafkaStorageError {
		t.Errorf("append error maps to Kafka error %d, want KAFKA_STORAGE_ERROR (%d)", CodeOf(appendErr), CodeKafkaStorageError)
	}
	if err := crashSameBatches(l, acked); err != nil {
		t.Errorf("after the failed append: %v", err)
	}
	var info AppendInfo
	if err := l.AppendAsLeader(AppendBatch(nil, BatchSpec{Records: []Record{{Value: []byte("x")}}}), 2, false, &info); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("the next append returned %v; a write error must be sticky", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("close on a full disk: %v", err)
	}
	closed = true

	// With space back, the log reopens with what it had and takes appends again. The failed
	// append's batch may or may not have reached the file (its outcome is unknown to the
	// producer, as on a timeout); if it did, it must be whole and exactly as appended.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	l, err = Open(dir, cfg, OpenOptions{})
	if err != nil {
		t.Fatalf("reopen after freeing space: %v", err)
	}
	closed = false
	got, err := crashReadLog(l, 1<<20)
	if err != nil {
		t.Fatalf("reopen after freeing space: %v", err)
	}
	want := acked
	if len(got) == len(acked)+1 {
		t.Logf("the failed append's batch was recovered")
		want = append(append([][]byte(nil), acked...), failed)
	}
	if err := crashSameBatches(l, want); err != nil {
		t.Errorf("reopen after freeing space: %v", err)
	}
	base := l.LogEndOffset()
	if err := l.AppendAsLeader(AppendBatch(nil, BatchSpec{Records: []Record{{Value: []byte("space is back")}}}), 3, false, &info); err != nil {
		t.Fatalf("append after freeing space: %v", err)
	}
	if info.FirstOffset != base {
		t.Errorf("append after freeing space got offset %d, want %d", info.FirstOffset, base)
	}
	want = append(want, AppendBatch(nil, BatchSpec{BaseOffset: base, PartitionLeaderEpoch: 3, Records: []Record{{Value: []byte("space is back")}}}))
	if err := crashSameBatches(l, want); err != nil {
		t.Errorf("after appending with space back: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	closed = true
}
