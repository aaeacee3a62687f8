package logstore

// Crash tests of log compaction: a crash image (a copy of the log folder, which is what a
// SIGKILL leaves) at every step of a segment swap, and SIGKILLs of a process that appends and
// compacts.

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCompactionSwapCrashAtEveryStep copies the log folder at every step of every segment
// swap of a few passes — what a SIGKILL there would leave — and opens each copy: the copy must
// hold a valid log whose records are exactly those of the log before the pass or after it
// (segment by segment), and a compaction pass on the copy must clear the swap's leftovers.
// Each round also writes an aborted transaction: every copy must keep every aborted
// transaction index entry (the swap never touches a .txnindex), and no pass may leave an
// aborted record.
func TestCompactionSwapCrashAtEveryStep(t *testing.T) {
	useGzipCodecs(t)
	root := t.TempDir()
	dir := filepath.Join(root, "live")
	cfg := DefaultConfig()
	cfg.SegmentBytes, cfg.IndexIntervalBytes, cfg.PreallocateBytes = 800, 1, 4096
	cfg.Compacted, cfg.DeleteRetentionMs = true, 0
	clock := int64(1_700_000_000_000)
	cfg.Now = func() int64 { return clock }
	l, err := Open(dir, cfg, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rng := rand.New(rand.NewPCG(7, 11))
	var images []string
	steps := map[string]int{}
	defer func() { testHookCleaner = func(string) {} }()
	swaps, txnSwap, txnSwapImages := 0, false, 0
	testHookCleaner = func(step string) {
		if step == "written" || step == "dropped" {
			swaps++
			txnSwap = step == "written" && swapsWithTxnIndex(dir) > 0
		}
		// Every step of every third swap and of every swap of a segment with a .txnindex, and
		// the first of each step, is enough.
		if swaps%3 != 1 && !txnSwap && steps[step] > 0 {
			return
		}
		img := filepath.Join(root, fmt.Sprintf("img-%03d-%s", len(images), step))
		if err := copyLogDir(dir, img); err != nil {
			t.Error(err)
		}
		if txnSwap {
			txnSwapImages++
		}
		images = append(images, img)
		steps[step]++
	}
	latest := map[string]string{}
	var aborted []AbortedTxn
	for round := 0; round < 3; round++ {
		for i := 0; i < 24; i++ {
			if i == 12 {
				aborted = append(aborted, crashTestAbortedTxn(t, l, int64(100+round), clock))
			}
			var recs []Record
			for j := 0; j < 1+rng.IntN(4); j++ {
				k := fmt.Sprintf("key-%d", rng.IntN(15))
				r := Record{Key: []byte(k), Value: []byte(fmt.Sprintf("r%d-%d-%d", round, i, j))}
				if rng.IntN(6) == 0 {
					r.Value = nil
				}
				recs = append(recs, r)
				latest[k] = string(r.Value)
			}
			b := AppendBatch(nil, BatchSpec{BaseTimestamp: clock, ProducerID: -1, BaseSequence: -1, Records: recs})
			if i%3 == 0 {
				b = gzipBatch(b)
			}
			var info AppendInfo
			if err := l.AppendAsLeader(b, 0, false, &info); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Roll(); err != nil {
			t.Fatal(err)
		}
		clock += 10
		first := len(images)
		if _, err := l.Compact(context.Background(), true); err != nil {
			t.Fatal(err)
		}
		leo := l.LogEndOffset()
		checkNoAbortedRecords(t, l, "live log")
		if got := l.CollectAbortedTxns(0, math.MaxInt64, nil); !reflect.DeepEqual(got, aborted) {
			t.Errorf("round %d: aborted transactions %+v after the pass, want %+v", round, got, aborted)
		}
		for _, img := range images[first:] {
			checkCrashImage(t, img, cfg, leo, latest, aborted)
		}
		t.Logf("round %d: %d crash images", round, len(images)-first)
	}
	for _, step := range []string{"written", "staged", "indexes-removed", "committed", "linked", "dropped"} {
		if steps[step] == 0 {
			t.Errorf("no swap reached step %q: %v", step, steps)
		}
	}
	if txnSwapImages == 0 {
		t.Error("no crash image caught the swap of a segment with an aborted transaction index")
	}
	t.Logf("%d crash images of a swap of a segment with a .txnindex", txnSwapImages)
}

// swapsWithTxnIndex counts the segments of a log folder whose cleaned copy is being written (a
// .log.cleaned is there) and that have an aborted transaction index.
func swapsWithTxnIndex(dir string) int {
	ents, _ := os.ReadDir(dir)
	n := 0
	for _, e := range ents {
		final := strings.TrimSuffix(e.Name(), cleanedSuffix)
		if base, ok := parseSegmentName(final, logSuffix); ok && final != e.Name() {
			if _, err := os.Stat(segmentName(dir, base, txnIndexSuffix)); err == nil {
				n++
			}
		}
	}
	return n
}

// crashTestAbortedTxn appends a transaction of producer pid with one record (key "txn-<pid>")
// and its abort marker, and records it in the aborted transaction index.
func crashTestAbortedTxn(t *testing.T, l *Log, pid int64, ts int64) AbortedTxn {
	t.Helper()
	var info AppendInfo
	data := AppendBatch(nil, BatchSpec{BaseTimestamp: ts, Attributes: AttrTransactional, ProducerID: pid,
		Records: []Record{{Key: []byte(fmt.Sprintf("txn-%d", pid)), Value: []byte("aborted")}}})
	if err := l.AppendAsLeader(data, 0, false, &info); err != nil {
		t.Fatal(err)
	}
	first := info.FirstOffset
	marker := AppendBatch(nil, BatchSpec{BaseTimestamp: ts, Attributes: AttrControl | AttrTransactional, ProducerID: pid,
		Records: []Record{{Key: []byte{0, 0, 0, 0}, Value: []byte{0, 0, 0, 0, 0, 0}}}})
	if err := l.AppendAsLeader(marker, 0, true, &info); err != nil {
		t.Fatal(err)
	}
	txn := AbortedTxn{ProducerID: pid, FirstOffset: first, LastOffset: info.LastOffset, LastStableOffset: info.LastOffset + 1}
	if err := l.AppendAbortedTxn(txn); err != nil {
		t.Fatal(err)
	}
	return txn
}

// checkNoAbortedRecords fails if a record of an aborted transaction ("txn-" keys) is left in a
// sealed segment after a complete pass.
func checkNoAbortedRecords(t *testing.T, l *Log, what string) {
	t.Helper()
	l.mu.RLock()
	activeBase := l.active().base
	l.mu.RUnlock()
	batches, err := readAllBatches(l, l.LogStartOffset())
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	var h BatchHeader
	for _, b := range batches {
		ParseBatchHeader(b, &h)
		rs, err := decodeTestBatch(b, &h)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for _, r := range rs {
			if strings.HasPrefix(string(r.key), "txn-") && r.off < activeBase {
				t.Errorf("%s: aborted record %s at %d survived a pass", what, r.key, r.off)
			}
		}
	}
}

// checkCrashImage opens a crash image: the log must be valid, every key's value must be the
// one before the pass or after it (tombstones may be gone), the aborted transaction index must
// hold exactly aborted, and a pass must clean up.
func checkCrashImage(t *testing.T, img string, cfg Config, leo Offset, after map[string]string, aborted []AbortedTxn) {
	t.Helper()
	name := filepath.Base(img)
	l, err := Open(img, cfg, OpenOptions{})
	if err != nil {
		t.Fatalf("%s: open: %v", name, err)
	}
	defer l.Close()
	if l.LogEndOffset() != leo {
		t.Errorf("%s: log end %d, want %d", name, l.LogEndOffset(), leo)
	}
	check := func(when string) {
		batches, err := readAllBatches(l, l.LogStartOffset())
		if err != nil {
			t.Fatalf("%s %s: %v", name, when, err)
		}
		got := map[string]string{}
		last := Offset(-1)
		var h BatchHeader
		for _, b := range batches {
			ParseBatchHeader(b, &h)
			if h.BaseOffset <= last {
				t.Fatalf("%s %s: offsets go back at %d", name, when, h.BaseOffset)
			}
			last = h.LastOffset()
			rs, err := decodeTestBatch(b, &h)
			if err != nil {
				t.Fatalf("%s %s: %v", name, when, err)
			}
			for _, r := range rs {
				got[string(r.key)] = string(r.value)
			}
		}
		for k, v := range after {
			if g, ok := got[k]; !ok && v != "" || ok && g != v {
				t.Errorf("%s %s: key %s = %q (present %v), want %q", name, when, k, g, ok, v)
			}
		}
	}
	checkTxns := func(when string) {
		if got := l.CollectAbortedTxns(0, math.MaxInt64, nil); !reflect.DeepEqual(got, aborted) {
			t.Errorf("%s %s: aborted transactions %+v, want %+v", name, when, got, aborted)
		}
	}
	check("after open")
	checkTxns("after open")
	leftovers := func() (names []string) {
		ents, _ := os.ReadDir(img)
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), cleanedSuffix) || strings.HasSuffix(e.Name(), swapSuffix) {
				names = append(names, e.Name())
			}
		}
		return names
	}
	if len(leftovers()) == 0 {
		return
	}
	if _, err := l.Compact(context.Background(), true); err != nil {
		t.Fatalf("%s: compact: %v", name, err)
	}
	check("after a pass")
	checkTxns("after a pass")
	checkNoAbortedRecords(t, l, name+" after a pass")
	if left := leftovers(); len(left) > 0 {
		t.Errorf("%s: %v left after a pass", name, left)
	}
}

// copyLogDir copies the regular files of a log folder (a crash image: what a SIGKILL leaves).
func copyLogDir(src, dst string) error {
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

var compactKillSeedFlag = flag.Uint64("compact.seed", 0, "replay TestCompactionKill9 with this seed")

const (
	compactChildName    = "TestCompactionKill9Child"
	compactChildDirEnv  = "SPATE_COMPACT_CHILD_DIR"
	compactChildSeedEnv = "SPATE_COMPACT_CHILD_SEED"
)

// compactKillConfig is the log config of the kill test's child.
func compactKillConfig() Config {
	cfg := DefaultConfig()
	cfg.SegmentBytes, cfg.IndexIntervalBytes, cfg.PreallocateBytes = 2048, 256, 4096
	cfg.Compacted, cfg.MinCleanableDirtyRatio = true, 0
	cfg.DeleteRetentionMs = 3600 * 1000 // tombstones stay: the latest record of every key must survive
	return cfg
}

// compactKillRecord is the record at offset off of a kill test's workload: a function of the
// offset alone, so the parent knows every record below the recovered log end.
func compactKillRecord(seed uint64, off Offset) Record {
	h := crashMix(seed ^ uint64(off)*0x9e3779b97f4a7c15)
	r := Record{Key: []byte(fmt.Sprintf("key-%d", h%23))}
	if h>>32%7 != 0 {
		r.Value = []byte(fmt.Sprintf("value-%d-%x", off, h>>40))
	}
	return r
}

// TestCompactionKill9Child is the child process of TestCompactionKill9; run directly it does
// nothing. It appends the workload and, on another goroutine, runs forced compaction passes
// back to back, reporting each appended log end on stdout.
func TestCompactionKill9Child(t *testing.T) {
	dir := os.Getenv(compactChildDirEnv)
	if dir == "" {
		t.Skip("helper process of TestCompactionKill9")
	}
	seed, _ := strconv.ParseUint(os.Getenv(compactChildSeedEnv), 10, 64)
	l, err := Open(dir, compactKillConfig(), OpenOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open:", err)
		os.Exit(2)
	}
	go func() {
		for {
			if _, err := l.Compact(context.Background(), true); err != nil {
				fmt.Fprintln(os.Stderr, "child: compact:", err)
				os.Exit(3)
			}
		}
	}()
	rng := rand.New(rand.NewPCG(seed, 1))
	deadline := time.Now().Add(60 * time.Second)
	var info AppendInfo
	for time.Now().Before(deadline) {
		next := l.LogEndOffset()
		var recs []Record
		for i := 0; i < 1+rng.IntN(8); i++ {
			recs = append(recs, compactKillRecord(seed, next+int64(i)))
		}
		if err := l.AppendAsLeader(AppendBatch(nil, BatchSpec{BaseTimestamp: crashBaseTs, ProducerID: -1, BaseSequence: -1, Records: recs}), 0, false, &info); err != nil {
			fmt.Fprintln(os.Stderr, "child: append:", err)
			os.Exit(3)
		}
		if _, err := os.Stdout.WriteString(fmt.Sprintf("A %d\n", info.LastOffset+1)); err != nil {
			os.Exit(2)
		}
	}
	fmt.Fprintln(os.Stderr, "child: not killed within 60s")
	os.Exit(4)
}

// TestCompactionKill9 kills (SIGKILL) a process that appends keyed records while compaction
// passes run back to back, at seeded moments, and checks the recovered log: every batch valid,
// offsets increasing, every record one that was appended at its offset, the latest record of
// every key present, nothing acknowledged lost; then a pass on the recovered log leaves no
// swap files and keeps all of that true.
func TestCompactionKill9(t *testing.T) {
	seed := *compactKillSeedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	rounds := 6
	if crashChaosLong() {
		rounds = 60
	}
	t.Logf("seed %d; replay: go test ./logstore -run '^TestCompactionKill9$' -compact.seed %d", seed, seed)
	for i := 0; i < rounds; i++ {
		rs := crashMix(seed + uint64(i))
		krng := rand.New(rand.NewPCG(rs, 2))
		dir := filepath.Join(t.TempDir(), "log")
		acked := compactChildRun(t, dir, rs, 20+krng.IntN(400), time.Duration(krng.IntN(3000))*time.Microsecond)
		var left []string
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), cleanedSuffix) || strings.HasSuffix(e.Name(), swapSuffix) {
				left = append(left, e.Name())
			}
		}
		t.Logf("round %d (seed %d): killed at log end >= %d, swap files left: %v", i, rs, acked, left)
		l, err := Open(dir, compactKillConfig(), OpenOptions{})
		if err != nil {
			t.Fatalf("round %d (seed %d): open: %v", i, rs, err)
		}
		if l.LogEndOffset() < acked {
			t.Errorf("round %d (seed %d): log end %d below the acknowledged %d", i, rs, l.LogEndOffset(), acked)
		}
		checkKillImage(t, l, rs, "after open")
		if _, err := l.Compact(context.Background(), true); err != nil {
			t.Errorf("round %d (seed %d): compact: %v", i, rs, err)
		}
		checkKillImage(t, l, rs, "after a pass")
		ents, _ = os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), cleanedSuffix) || strings.HasSuffix(e.Name(), swapSuffix) {
				t.Errorf("round %d (seed %d): %s left after a pass", i, rs, e.Name())
			}
		}
		l.Close()
	}
}

// checkKillImage checks a recovered kill test log against the workload.
func checkKillImage(t *testing.T, l *Log, seed uint64, when string) {
	t.Helper()
	batches, err := readAllBatches(l, l.LogStartOffset())
	if err != nil {
		t.Fatalf("seed %d %s: %v", seed, when, err)
	}
	present := map[Offset]bool{}
	last := Offset(-1)
	var h BatchHeader
	for _, b := range batches {
		ParseBatchHeader(b, &h)
		if h.BaseOffset <= last {
			t.Fatalf("seed %d %s: batch at %d after offset %d", seed, when, h.BaseOffset, last)
		}
		last = h.LastOffset()
		rs, err := decodeTestBatch(b, &h)
		if err != nil {
			t.Fatalf("seed %d %s: batch at %d: %v", seed, when, h.BaseOffset, err)
		}
		for _, r := range rs {
			want := compactKillRecord(seed, r.off)
			if !bytes.Equal(r.key, want.Key) || !bytes.Equal(r.value, want.Value) || (r.value == nil) != (want.Value == nil) {
				t.Fatalf("seed %d %s: record at %d is %q=%q, appended %q=%q", seed, when, r.off, r.key, r.value, want.Key, want.Value)
			}
			present[r.off] = true
		}
	}
	latest := map[string]Offset{}
	for off := Offset(0); off < l.LogEndOffset(); off++ {
		latest[string(compactKillRecord(seed, off).Key)] = off
	}
	for k, off := range latest {
		if !present[off] {
			t.Errorf("seed %d %s: latest record of %s, at %d, is missing", seed, when, k, off)
		}
	}
}

// compactChildRun starts the child on dir, kills it after it reported appends appends and
// delay more, and returns the last log end it reported.
func compactChildRun(t *testing.T, dir string, seed uint64, appends int, delay time.Duration) Offset {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+compactChildName+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), compactChildDirEnv+"="+dir, compactChildSeedEnv+"="+strconv.FormatUint(seed, 10))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	sc := bufio.NewScanner(out)
	acked, n := Offset(-1), 0
	for n < appends && sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "A ") {
			acked, _ = strconv.ParseInt(line[2:], 10, 64)
			n++
		}
	}
	time.Sleep(delay)
	cmd.Process.Signal(syscall.SIGKILL)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "A ") {
			acked, _ = strconv.ParseInt(line[2:], 10, 64)
		}
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of our SIGKILL: %v; stderr:\n%s", err, stderr.String())
	}
	return acked
}
