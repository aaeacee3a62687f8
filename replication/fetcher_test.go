package replication

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/logstore"
)

// follower is a follower-side partition: a real log and epoch cache in a temporary folder.
type follower struct {
	p      tp
	dir    string
	log    *logstore.Log
	epochs *EpochCache
	hw     atomic.Int64
	lso    atomic.Int64
	calls  atomic.Int64
}

// newFollower opens a follower partition. Create followers before the fetcher, so that the
// fetcher is closed (cleanups run last-in first-out) before their logs are.
func newFollower(t *testing.T, p tp) *follower {
	t.Helper()
	dir := filepath.Join(t.TempDir(), p.String())
	lg, c := openReplica(t, dir, testConfig())
	t.Cleanup(func() { lg.Close() })
	fl := &follower{p: p, dir: dir, log: lg, epochs: c}
	fl.hw.Store(-1)
	return fl
}

func (fl *follower) replica(leaderEpoch int32) *Replica {
	return &Replica{Topic: fl.p.Topic, Partition: fl.p.Partition, Log: fl.log, Epochs: fl.epochs, LeaderEpoch: leaderEpoch,
		OnFetched: func(hw, lso int64) {
			fl.hw.Store(hw)
			fl.lso.Store(lso)
			fl.calls.Add(1)
		}}
}

// copyPrefix appends the leader's batches below upTo to the follower, as replication would.
func (fl *follower) copyPrefix(t *testing.T, leader *logstore.Log, upTo int64) {
	t.Helper()
	var res logstore.ReadResult
	defer res.Release()
	if err := leader.Read(0, 1<<30, upTo, true, &res); err != nil {
		t.Fatal(err)
	}
	var info logstore.AppendInfo
	for _, r := range res.Regions {
		if err := fl.log.AppendAsFollower(r.Data, &info); err != nil {
			t.Fatal(err)
		}
	}
}

// appendOwn appends n one-record batches of the follower's own in epoch (a divergent tail).
func (fl *follower) appendOwn(t *testing.T, epoch int32, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		b := logstore.AppendBatch(nil, logstore.BatchSpec{BaseOffset: 0, PartitionLeaderEpoch: -1, BaseTimestamp: 1,
			ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, Records: []logstore.Record{{Value: []byte("divergent")}}})
		var info logstore.AppendInfo
		if err := fl.log.AppendAsLeader(b, epoch, false, &info); err != nil {
			t.Fatal(err)
		}
	}
}

func assertSameLog(t *testing.T, what string, leader, follower *logstore.Log) {
	t.Helper()
	a, b := logBytes(t, leader), logBytes(t, follower)
	if !bytes.Equal(a, b) {
		i := 0
		for i < len(a) && i < len(b) && a[i] == b[i] {
			i++
		}
		t.Fatalf("%s: follower log differs from the leader's: %d vs %d bytes, first difference at byte %d", what, len(b), len(a), i)
	}
	if leader.LogEndOffset() != follower.LogEndOffset() {
		t.Fatalf("%s: log end offsets differ: leader %d, follower %d", what, leader.LogEndOffset(), follower.LogEndOffset())
	}
}

func waitCaughtUp(t *testing.T, l *testLeader, fls ...*follower) {
	t.Helper()
	waitFor(t, "followers to catch up", func() bool {
		for _, fl := range fls {
			if fl.log.LogEndOffset() != l.part(fl.p).log.LogEndOffset() {
				return false
			}
		}
		return true
	})
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestFollowerReplicatesPartitionsByteForByte: several partitions of two topics, across two
// leader epochs and many segments, produced to while replicating, end up byte-for-byte equal;
// the follower's epoch cache (and its file) equals the leader's, built from the batches'
// partition leader epochs; OnFetched reports the leader's high watermark, which reaches the
// log end once the follower has fetched it.
func TestFollowerReplicatesPartitionsByteForByte(t *testing.T) {
	l := startLeader(t)
	parts := []tp{{Topic: "orders", Partition: 0}, {Topic: "orders", Partition: 1}, {Topic: "orders", Partition: 2},
		{Topic: "events", Partition: 0}, {Topic: "events", Partition: 7}}
	var fls []*follower
	for i, p := range parts {
		l.addPartition(p, 0, testConfig())
		l.produce(p, 20+i*7)
		l.becomeLeader(p, 3)
		l.produce(p, 15)
		fls = append(fls, newFollower(t, p))
	}
	f := newTestFetcher(t, l.addr(), nil)
	for _, fl := range fls {
		if err := f.Add(fl.replica(3)); err != nil {
			t.Fatal(err)
		}
	}
	for round := 0; round < 5; round++ {
		for _, p := range parts {
			l.produce(p, 10)
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitCaughtUp(t, l, fls...)
	for _, fl := range fls {
		lp := l.part(fl.p)
		assertSameLog(t, fl.p.String(), lp.log, fl.log)
		if fl.log.NumSegments() < 2 {
			t.Errorf("%s: %d segments, want several", fl.p, fl.log.NumSegments())
		}
		leaderFile := readFile(t, lp.epochs.Path())
		want := fmt.Sprintf("0\n2\n0 0\n3 %d\n", lp.epochs.Entries()[1].StartOffset)
		if leaderFile != want {
			t.Fatalf("leader epoch file %q, want %q", leaderFile, want)
		}
		if got := readFile(t, filepath.Join(fl.dir, EpochCheckpointFile)); got != want {
			t.Errorf("%s: follower epoch file %q, want %q", fl.p, got, want)
		}
		waitFor(t, "the high watermark to reach the log end", func() bool { return fl.hw.Load() == lp.log.LogEndOffset() })
		if fl.lso.Load() != 0 {
			t.Errorf("%s: log start offset %d reported, want 0", fl.p, fl.lso.Load())
		}
		st, ok := f.Status(fl.p)
		if !ok || st.Phase != PhaseFetching || st.LastErrorCode != 0 {
			t.Errorf("%s: status %+v", fl.p, st)
		}
	}
	if n := l.epochReqs.Load(); n != 0 {
		t.Errorf("%d OffsetForLeaderEpoch requests for empty followers, want 0", n)
	}
	if f.Partitions() != len(parts) {
		t.Errorf("Partitions() = %d", f.Partitions())
	}
}

// TestFetcherPipelinesRequests: partitions with a backlog, added one by one to a leader that
// takes a few milliseconds per fetch, are fetched by several requests in flight on the one
// connection (never more than MaxInflight, each partition in one of them), and replicate
// exactly.
func TestFetcherPipelinesRequests(t *testing.T) {
	l := startLeader(t)
	var fls []*follower
	for i := 0; i < 6; i++ {
		p := tp{Topic: "pipe", Partition: int32(i)}
		l.addPartition(p, 0, testConfig())
		l.produce(p, 60)
		fls = append(fls, newFollower(t, p))
	}
	l.mu.Lock()
	l.fetchDelay = 3 * time.Millisecond
	l.mu.Unlock()
	f := newTestFetcher(t, l.addr(), func(c *FetcherConfig) { c.MaxInflight = 4; c.PartitionMaxBytes = 2048 })
	for _, fl := range fls {
		if err := f.Add(fl.replica(0)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	waitCaughtUp(t, l, fls...)
	for _, fl := range fls {
		assertSameLog(t, fl.p.String(), l.part(fl.p).log, fl.log)
	}
	m := l.maxInflight.Load()
	if m < 2 || m > 4 {
		t.Fatalf("at most %d requests in flight, want 2 to MaxInflight (4)", m)
	}
	if n := l.accepted.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
	t.Logf("max requests in flight: %d, fetches: %d", m, l.fetches.Load())
}

// TestIdlePartitionsDoNotHoldBackBusyOnes: the leader answers in order and parks a fetch that
// finds no data. An idle partition's parked fetch must not sit ahead of a busy partition's
// fetches: after the first round, records produced to the busy partition replicate well
// within MaxWait, because the idle partition waits for the busy one's fetch and joins it.
func TestIdlePartitionsDoNotHoldBackBusyOnes(t *testing.T) {
	const maxWait = time.Second
	l := startLeader(t)
	idle, busy := tp{Topic: "hol", Partition: 0}, tp{Topic: "hol", Partition: 1}
	l.addPartition(idle, 0, testConfig())
	l.addPartition(busy, 0, testConfig())
	l.produce(busy, 5)
	flIdle, flBusy := newFollower(t, idle), newFollower(t, busy)
	f := newTestFetcher(t, l.addr(), func(c *FetcherConfig) { c.MaxWait = maxWait })
	if err := f.Add(flIdle.replica(0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the idle partition's fetch to park", func() bool { return l.fetches.Load() == 1 })
	if err := f.Add(flBusy.replica(0)); err != nil { // its first fetch waits behind the parked one
		t.Fatal(err)
	}
	waitCaughtUp(t, l, flBusy)
	for i := 0; i < 5; i++ {
		l.produce(busy, 1)
		start := time.Now()
		waitCaughtUp(t, l, flBusy)
		if d := time.Since(start); d > maxWait/2 {
			t.Fatalf("produce %d replicated after %v: held back behind a parked fetch (MaxWait %v)", i, d, maxWait)
		}
	}
	if m := l.maxInflight.Load(); m < 2 {
		t.Errorf("max in flight %d: the busy partition's first fetch should have been pipelined", m)
	}
}

// TestTruncationOffsetForLeaderEpochKIP101: the follower wrote batches in epoch 1 past what
// the new leader (epoch 2) has. On Add it asks OffsetForLeaderEpoch for epoch 1, gets epoch
// 1's end on the leader, cuts its tail there and replicates the leader's epoch-2 batches.
func TestTruncationOffsetForLeaderEpochKIP101(t *testing.T) {
	l := startLeader(t)
	p := tp{Topic: "t", Partition: 0}
	lp := l.addPartition(p, 1, testConfig())
	l.produce(p, 10)
	end1 := lp.log.LogEndOffset()
	l.becomeLeader(p, 2)
	l.produce(p, 5)

	fl := newFollower(t, p)
	fl.copyPrefix(t, lp.log, end1)
	fl.appendOwn(t, 1, 4)
	if err := fl.epochs.Assign(1, 0); err != nil {
		t.Fatal(err)
	}
	divergentEnd := fl.log.LogEndOffset()

	f := newTestFetcher(t, l.addr(), nil)
	if err := f.Add(fl.replica(2)); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, l, fl)
	assertSameLog(t, "after truncation", lp.log, fl.log)
	if got, want := fl.epochs.Entries(), []EpochEntry{{1, 0}, {2, end1}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("follower epochs %v, want %v", got, want)
	}
	if n := l.epochReqs.Load(); n != 1 {
		t.Errorf("%d OffsetForLeaderEpoch requests, want 1", n)
	}
	if l.diverged.Load() != 0 {
		t.Errorf("the leader answered diverging_epoch; the truncation should have come first")
	}
	t.Logf("follower cut [%d, %d) and replicated to %d", end1, divergentEnd, fl.log.LogEndOffset())
}

// TestTruncationFallsBackToEarlierEpochs (KIP-279): the follower has an epoch (3) the leader
// never had. The leader answers its largest epoch below (2) with that epoch's end; the
// follower does not have epoch 2 either, so it truncates to the end of its own largest epoch
// below 2 (the start of epoch 3), asks again for epoch 1, and truncates to the leader's end
// of epoch 1.
func TestTruncationFallsBackToEarlierEpochs(t *testing.T) {
	l := startLeader(t)
	p := tp{Topic: "t", Partition: 0}
	lp := l.addPartition(p, 1, testConfig())
	l.produceSingles(p, 8) // epoch 1: [0, 8)
	l.becomeLeader(p, 2)
	l.produceSingles(p, 7) // epoch 2: [8, 15)
	l.becomeLeader(p, 4)
	l.produceSingles(p, 5) // epoch 4: [15, 20)

	fl := newFollower(t, p)
	fl.copyPrefix(t, lp.log, 8)
	fl.appendOwn(t, 1, 2) // epoch 1: [8, 10), unlike the leader
	fl.appendOwn(t, 3, 10)
	for _, e := range []EpochEntry{{1, 0}, {3, 10}} {
		if err := fl.epochs.Assign(e.Epoch, e.StartOffset); err != nil {
			t.Fatal(err)
		}
	}
	f := newTestFetcher(t, l.addr(), nil)
	if err := f.Add(fl.replica(4)); err != nil {
		t.Fatal(err)
	}
	// The follower's end (20) is the leader's: wait for the truncation before comparing.
	waitFor(t, "the truncation", func() bool {
		st, _ := f.Status(p)
		return l.epochReqs.Load() == 2 && st.Phase == PhaseFetching
	})
	l.produceSingles(p, 3)
	waitCaughtUp(t, l, fl)
	assertSameLog(t, "after truncation", lp.log, fl.log)
	if got, want := fl.epochs.Entries(), lp.epochs.Entries(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("follower epochs %v, want the leader's %v", got, want)
	}
	if n := l.epochReqs.Load(); n != 2 {
		t.Errorf("%d OffsetForLeaderEpoch requests, want 2 (epoch 3, then 1)", n)
	}
}

// TestTruncationDivergingEpochKIP320: the leader cannot tell the follower where to truncate
// (OffsetForLeaderEpoch answers UNDEFINED, and the follower's high watermark is its log end),
// so the follower fetches with last_fetched_epoch 1 past epoch 1's end on the leader; the
// leader answers diverging_epoch, the follower cuts its epoch-1 tail there and fetches on.
func TestTruncationDivergingEpochKIP320(t *testing.T) {
	l := startLeader(t)
	p := tp{Topic: "t", Partition: 3}
	lp := l.addPartition(p, 1, testConfig())
	l.produce(p, 10)
	end1 := lp.log.LogEndOffset()
	l.becomeLeader(p, 2)
	l.produce(p, 5)
	l.mu.Lock()
	l.epochOverride = func(tp, int32) (EpochEndOffset, bool) {
		return EpochEndOffset{Epoch: UndefinedEpoch, EndOffset: UndefinedEpochOffset}, true
	}
	l.mu.Unlock()

	fl := newFollower(t, p)
	fl.copyPrefix(t, lp.log, end1)
	fl.appendOwn(t, 1, 4)
	if err := fl.epochs.Assign(1, 0); err != nil {
		t.Fatal(err)
	}
	r := fl.replica(2)
	r.HighWatermark = fl.log.LogEndOffset()
	f := newTestFetcher(t, l.addr(), nil)
	if err := f.Add(r); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, l, fl)
	assertSameLog(t, "after diverging_epoch", lp.log, fl.log)
	if n := l.diverged.Load(); n != 1 {
		t.Errorf("leader answered diverging_epoch %d times, want 1", n)
	}
	if got, want := fl.epochs.Entries(), []EpochEntry{{1, 0}, {2, end1}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("follower epochs %v, want %v", got, want)
	}
}

// TestOutOfRangeLeaderStartAhead: the leader deleted records the empty follower would fetch
// (its log start moved). OFFSET_OUT_OF_RANGE → ListOffsets latest (not below the follower's
// end) → earliest (above it) → TruncateFullyAndStartAt the leader's log start, then fetch.
// With a log start inside a batch, the leader returns that whole batch and the empty follower
// restarts at the batch's base, as Kafka's follower does.
func TestOutOfRangeLeaderStartAhead(t *testing.T) {
	for _, aligned := range []bool{true, false} {
		t.Run(fmt.Sprintf("aligned=%v", aligned), func(t *testing.T) {
			l := startLeader(t)
			p := tp{Topic: "oor", Partition: 0}
			lp := l.addPartition(p, 0, testConfig())
			l.produceWith(p, 30, func(int) int { return 4 })
			start := int64(40) // a batch's base: batches hold 4 records
			if !aligned {
				start = 42
			}
			if _, err := lp.log.DeleteRecordsBefore(start); err != nil {
				t.Fatal(err)
			}
			if err := lp.epochs.TruncateFromStart(start); err != nil {
				t.Fatal(err)
			}
			fl := newFollower(t, p)
			f := newTestFetcher(t, l.addr(), nil)
			if err := f.Add(fl.replica(0)); err != nil {
				t.Fatal(err)
			}
			waitCaughtUp(t, l, fl)
			if got, want := fl.log.LogStartOffset(), int64(40); got != want {
				t.Errorf("follower log start %d, want %d", got, want)
			}
			if !bytes.Equal(logBytes(t, lp.log), logBytes(t, fl.log)) {
				t.Fatal("follower log differs from the leader's")
			}
			if n := l.listReqs.Load(); n != 2 {
				t.Errorf("%d ListOffsets requests, want 2 (latest, earliest)", n)
			}
			waitFor(t, "OnFetched with the leader's log start", func() bool { return fl.lso.Load() == start })
		})
	}
}

// TestOutOfRangeLeaderBehind: the follower (no epoch cache, high watermark at its end) is
// ahead of the leader (unclean election). OFFSET_OUT_OF_RANGE → ListOffsets latest is below
// the follower's end → truncate to it and fetch what the leader writes next.
func TestOutOfRangeLeaderBehind(t *testing.T) {
	l := startLeader(t)
	p := tp{Topic: "oor", Partition: 1}
	lp := l.addPartition(p, 0, testConfig())
	l.produceSingles(p, 10)
	fl := newFollower(t, p)
	fl.copyPrefix(t, lp.log, 10)
	fl.appendOwn(t, 0, 5)
	r := fl.replica(0)
	r.HighWatermark = fl.log.LogEndOffset()
	f := newTestFetcher(t, l.addr(), nil)
	if err := f.Add(r); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the follower to truncate", func() bool { return fl.log.LogEndOffset() == 10 })
	l.produce(p, 8)
	waitCaughtUp(t, l, fl)
	assertSameLog(t, "after truncation", lp.log, fl.log)
	if n := l.listReqs.Load(); n != 1 {
		t.Errorf("%d ListOffsets requests, want 1 (latest)", n)
	}
}

// TestReconnectAfterDrop: the leader drops the connection when a fetch arrives, leaving that
// request and any pipelined after it unanswered. The fetcher re-dials and fetches those
// partitions again from their log end offsets; nothing is lost or duplicated.
func TestReconnectAfterDrop(t *testing.T) {
	l := startLeader(t)
	var fls []*follower
	for i := 0; i < 3; i++ {
		p := tp{Topic: "drop", Partition: int32(i)}
		l.addPartition(p, 0, testConfig())
		l.produce(p, 10)
		fls = append(fls, newFollower(t, p))
	}
	l.mu.Lock()
	l.dropAtFetch = 3
	l.mu.Unlock()
	f := newTestFetcher(t, l.addr(), nil)
	for _, fl := range fls {
		if err := f.Add(fl.replica(0)); err != nil {
			t.Fatal(err)
		}
	}
	for round := 0; round < 10; round++ {
		for _, fl := range fls {
			l.produce(fl.p, 3)
		}
		time.Sleep(3 * time.Millisecond)
	}
	waitCaughtUp(t, l, fls...)
	for _, fl := range fls {
		assertSameLog(t, fl.p.String(), l.part(fl.p).log, fl.log)
	}
	if n := l.accepted.Load(); n < 2 {
		t.Fatalf("%d connections, want a reconnect", n)
	}
}

// TestMalformedResponseReconnects: a response the decoder rejects closes the connection; the
// fetcher re-dials and fetches the request's partitions again.
func TestMalformedResponseReconnects(t *testing.T) {
	l := startLeader(t)
	p := tp{Topic: "garble", Partition: 0}
	l.addPartition(p, 0, testConfig())
	l.produce(p, 10)
	l.mu.Lock()
	l.garbleAtFetch = 2
	l.mu.Unlock()
	fl := newFollower(t, p)
	f := newTestFetcher(t, l.addr(), func(c *FetcherConfig) { c.PartitionMaxBytes = 1024 })
	if err := f.Add(fl.replica(0)); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, l, fl)
	assertSameLog(t, "after a malformed response", l.part(p).log, fl.log)
	if n := l.accepted.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// TestPartialTrailingBatchIsDropped: a leader may cut a partition's last batch short (Kafka
// slices file regions by bytes); the whole batches before it are appended and the cut one is
// fetched again next time.
func TestPartialTrailingBatchIsDropped(t *testing.T) {
	lg, c := openReplica(t, filepath.Join(t.TempDir(), "cut-0"), testConfig())
	defer lg.Close()
	f := newTestFetcher(t, "unused:0", func(c *FetcherConfig) {
		c.Dial = func(ctx context.Context, _, _ string) (net.Conn, error) { <-ctx.Done(); return nil, ctx.Err() }
	})
	if err := f.Add(&Replica{Topic: "cut", Partition: 0, Log: lg, Epochs: c, LeaderEpoch: 0}); err != nil {
		t.Fatal(err)
	}
	b1, b2 := testBatch(0, 3, 50), testBatch(3, 2, 50)
	logstore.SetPartitionLeaderEpoch(b1, 0)
	logstore.SetPartitionLeaderEpoch(b2, 0)
	resp := kmsg.NewPtrFetchResponse()
	resp.SetVersion(12)
	rt := kmsg.NewFetchResponseTopic()
	rt.Topic = "cut"
	rp := kmsg.NewFetchResponseTopicPartition()
	rp.RecordBatches = append(append([]byte{}, b1...), b2[:len(b2)-7]...)
	rt.Partitions = append(rt.Partitions, rp)
	resp.Topics = append(resp.Topics, rt)
	f.mu.Lock()
	ok := f.buildLocked(f.now())
	corr := f.params.correlationID
	f.mu.Unlock()
	if !ok {
		t.Fatal("no fetch built")
	}
	if err := f.handle(frameOf(corr, resp)); err != nil {
		t.Fatal(err)
	}
	if lg.LogEndOffset() != 3 || !bytes.Equal(logBytes(t, lg), b1) {
		t.Fatalf("log end %d; want the first batch only", lg.LogEndOffset())
	}
	if st, _ := f.Status(tp{Topic: "cut", Partition: 0}); st.Phase != PhaseFetching || st.InFlight {
		t.Fatalf("status %+v", st)
	}
}

// TestLeaderEpochErrors: FENCED_LEADER_EPOCH (this broker's metadata is stale) pauses the
// partition until Add brings a new epoch; UNKNOWN_LEADER_EPOCH and NOT_LEADER_OR_FOLLOWER
// (the leader's metadata is behind) and a storage error are retried after the backoff, on
// Fetch and on OffsetForLeaderEpoch alike.
func TestLeaderEpochErrors(t *testing.T) {
	l := startLeader(t)
	fenced := tp{Topic: "err", Partition: 0}
	retried := tp{Topic: "err", Partition: 1}
	truncating := tp{Topic: "err", Partition: 2}
	for _, p := range []tp{fenced, retried, truncating} {
		l.addPartition(p, 5, testConfig())
		l.produce(p, 5)
	}
	l.mu.Lock()
	l.fetchErrors[retried] = []int16{kerr.UnknownLeaderEpoch.Code, kerr.NotLeaderForPartition.Code, kerr.KafkaStorageError.Code}
	l.epochErrors[truncating] = []int16{kerr.UnknownLeaderEpoch.Code, kerr.NotLeaderForPartition.Code}
	l.mu.Unlock()
	flFenced, flRetried, flTrunc := newFollower(t, fenced), newFollower(t, retried), newFollower(t, truncating)
	if err := flTrunc.epochs.Assign(5, 0); err != nil { // has an epoch: OffsetForLeaderEpoch first
		t.Fatal(err)
	}
	f := newTestFetcher(t, l.addr(), nil)
	for _, r := range []*Replica{flFenced.replica(4), flRetried.replica(5), flTrunc.replica(5)} {
		if err := f.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	waitCaughtUp(t, l, flRetried, flTrunc)
	waitFor(t, "the fenced partition to pause", func() bool {
		st, _ := f.Status(fenced)
		return st.Phase == PhasePaused && st.LastErrorCode == kerr.FencedLeaderEpoch.Code
	})
	time.Sleep(50 * time.Millisecond)
	if fl := flFenced.log.LogEndOffset(); fl != 0 {
		t.Fatalf("paused partition fetched up to %d", fl)
	}
	if err := f.Add(flFenced.replica(5)); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, l, flFenced)
	for _, fl := range []*follower{flFenced, flRetried, flTrunc} {
		assertSameLog(t, fl.p.String(), l.part(fl.p).log, fl.log)
		if st, _ := f.Status(fl.p); st.LastErrorCode != 0 {
			t.Errorf("%s: last error %d after catching up", fl.p, st.LastErrorCode)
		}
	}
	if n := l.epochReqs.Load(); n != 3 {
		t.Errorf("%d OffsetForLeaderEpoch requests, want 3 (two errors, then the answer)", n)
	}
}

// TestRemoveStopsReplication: after Remove returns, the partition's log is not written and
// OnFetched is not called any more; the other partitions go on.
func TestRemoveStopsReplication(t *testing.T) {
	l := startLeader(t)
	a, b := tp{Topic: "rm", Partition: 0}, tp{Topic: "rm", Partition: 1}
	l.addPartition(a, 0, testConfig())
	l.addPartition(b, 0, testConfig())
	l.produce(a, 5)
	l.produce(b, 5)
	flA, flB := newFollower(t, a), newFollower(t, b)
	f := newTestFetcher(t, l.addr(), nil)
	f.Add(flA.replica(0))
	f.Add(flB.replica(0))
	waitCaughtUp(t, l, flA, flB)
	f.Remove(a)
	leo, calls := flA.log.LogEndOffset(), flA.calls.Load()
	l.produce(a, 5)
	l.produce(b, 5)
	waitCaughtUp(t, l, flB)
	time.Sleep(30 * time.Millisecond)
	if flA.log.LogEndOffset() != leo {
		t.Fatalf("removed partition's log moved from %d to %d", leo, flA.log.LogEndOffset())
	}
	if c := flA.calls.Load(); c > calls+1 { // one call may have been running at Remove
		t.Fatalf("OnFetched called %d times after Remove", c-calls)
	}
	if _, ok := f.Status(a); ok {
		t.Fatal("removed partition still has a status")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Add(flA.replica(0)); err != ErrFetcherClosed {
		t.Fatalf("Add after Close: %v", err)
	}
}
