package txn

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/spate-broker/spate/logstore"
)

// TestPartitionForIsKafkasHash checks java.lang.String.hashCode (UTF-16 code units, int32
// overflow) and Utils.abs(hash) % partitions, including Integer.MIN_VALUE → 0.
func TestPartitionForIsKafkasHash(t *testing.T) {
	for _, tc := range []struct {
		s    string
		hash int32
		p50  int32
	}{
		{"", 0, 0},
		{"a", 97, 47},
		{"hello", 99162322, 22},
		{"polygenelubricants", -2147483648, 0},
		{"my-group", -1906497762, 12},
		{"grüße", 98768023, 23},
		{"\U0001F600", 1772899, 49},
	} {
		if h := javaHashCode(tc.s); h != tc.hash {
			t.Errorf("hashCode(%q) = %d, want %d", tc.s, h, tc.hash)
		}
		if p := partitionFor(tc.s, 50); p != tc.p50 {
			t.Errorf("partitionFor(%q, 50) = %d, want %d", tc.s, p, tc.p50)
		}
	}
}

// TestStateRecordsAreKafkas compares the records with Kafka's TransactionLog layout, encoded
// here by hand: key v0; value v0 with partitions grouped by topic, null when Empty.
func TestStateRecordsAreKafkas(t *testing.T) {
	be16 := func(b []byte, v int16) []byte { return binary.BigEndian.AppendUint16(b, uint16(v)) }
	be32 := func(b []byte, v int32) []byte { return binary.BigEndian.AppendUint32(b, uint32(v)) }
	be64 := func(b []byte, v int64) []byte { return binary.BigEndian.AppendUint64(b, uint64(v)) }
	str := func(b []byte, s string) []byte { return append(be16(b, int16(len(s))), s...) }

	if got, want := stateKey("tx"), str(be16(nil, 0), "tx"); !bytes.Equal(got, want) {
		t.Fatalf("key %x, want %x", got, want)
	}

	m := &meta{producerID: 5, producerEpoch: 2, timeoutMs: 60000, state: Ongoing, startMs: 900, updateMs: 1000,
		partitions: map[TopicPartition]struct{}{{"b", 3}: {}, {"a", 1}: {}, {"a", 0}: {}}}
	want := be16(nil, 0)
	want = be64(want, 5)
	want = be16(want, 2)
	want = be32(want, 60000)
	want = append(want, 1) // Ongoing
	want = be32(want, 2)   // two topics
	want = be32(str(want, "a"), 2)
	want = be32(be32(want, 0), 1)
	want = be32(str(want, "b"), 1)
	want = be32(want, 3)
	want = be64(want, 1000)
	want = be64(want, 900)
	if got := stateValue(m); !bytes.Equal(got, want) {
		t.Fatalf("Ongoing value\n got %x\nwant %x", got, want)
	}

	empty := &meta{producerID: 5, producerEpoch: 3, timeoutMs: 60000, state: Empty, startMs: -1, updateMs: 1000}
	want = be16(nil, 0)
	want = be64(want, 5)
	want = be16(want, 3)
	want = be32(want, 60000)
	want = append(want, 0)
	want = be32(want, -1) // null
	want = be64(want, 1000)
	want = be64(want, -1)
	if got := stateValue(empty); !bytes.Equal(got, want) {
		t.Fatalf("Empty value\n got %x\nwant %x", got, want)
	}

	id, back, err := decodeRecord(stateKey("tx"), stateValue(m))
	if err != nil || id != "tx" || back.producerID != 5 || back.producerEpoch != 2 || back.state != Ongoing ||
		back.startMs != 900 || back.updateMs != 1000 || len(back.partitions) != 3 || back.lastProducerEpoch != -1 {
		t.Fatalf("decode: %q %+v %v", id, back, err)
	}
	if id, back, err := decodeRecord(stateKey("tx"), nil); err != nil || id != "tx" || back != nil {
		t.Fatalf("tombstone: %q %+v %v", id, back, err)
	}
}

// TestRestartRestoresStateAndCompletesPrepareCommit: a new coordinator on the same logs has
// every id's latest state; a transaction left in PrepareCommit (its markers failing when the
// old coordinator stopped) gets its markers written again and completes; an Ongoing one keeps
// its start time, so its timeout still counts from it.
func TestRestartRestoresStateAndCompletesPrepareCommit(t *testing.T) {
	dir := t.TempDir()
	h := openTestHost(t, dir, 1000)
	clk := &clock{}
	clk.ms.Store(t0)
	c := newTestCoordinator(t, h, testConfig(), clk)
	if code := c.Ensure(); code != 0 {
		t.Fatal(code)
	}
	mustInit(t, c, "done", 1000, 0)
	mustAdd(t, c, "done", 1000, 0, tp("a", 0))
	if code := endTxn(c, 3, "done", 1000, 0, true); code != 0 {
		t.Fatal(code)
	}
	mustInit(t, c, "going", 1001, 0)
	mustAdd(t, c, "going", 1001, 0, tp("b", 0))
	mustInit(t, c, "prep", 1002, 0)
	mustInit(t, c, "prep", 1002, 1)
	mustAdd(t, c, "prep", 1002, 1, tp("a", 1), tp("a", 0))

	entered := make(chan struct{}, 1)
	h.mu.Lock()
	h.entered = entered
	h.codes = func(int, []TopicPartition) []int16 { return []int16{errNotLeaderOrFollower, errNotLeaderOrFollower} }
	h.mu.Unlock()
	done := make(chan int16, 1)
	go func() { done <- endTxn(c, 3, "prep", 1002, 1, true) }()
	<-entered
	c.Close()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("EndTxn when the coordinator stopped: %d (the outcome is in the log)", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("EndTxn not answered after Close")
	}
	h.close()

	h2 := openTestHost(t, dir, 2000)
	clk.advance(5000)
	c2 := newTestCoordinator(t, h2, testConfig(), clk)
	waitState(t, c2, "prep", "CompleteCommit")
	calls := h2.markerCalls()
	if len(calls) != 1 {
		t.Fatalf("%d marker calls after restart", len(calls))
	}
	wantMarkers(t, calls[0], 1002, 1, true, tp("a", 0), tp("a", 1))
	wantStates(t, recordsOf(t, h2, "prep"), Empty, Empty, Ongoing, PrepareCommit, CompleteCommit)

	wantState(t, c2, "done", "CompleteCommit", 1000, 0)
	d := wantState(t, c2, "going", "Ongoing", 1001, 0)
	if d.StartTimestamp != t0 || d.TimeoutMillis != 10000 || len(d.Topics) != 1 || d.Topics[0].Topic != "b" {
		t.Fatalf("going: %+v", d)
	}
	if code := c2.VerifyPartition("going", 1001, 0, tp("b", 0)); code != 0 {
		t.Fatalf("VerifyPartition after restart: %d", code)
	}
	if n := c2.AbortTimedOutTransactions(); n != 0 {
		t.Fatalf("aborted %d at 5 s of 10", n)
	}
	clk.advance(5001)
	if n := c2.AbortTimedOutTransactions(); n != 1 {
		t.Fatalf("aborted %d, want 1", n)
	}
	waitState(t, c2, "going", "CompleteAbort")
	calls = h2.markerCalls()
	if len(calls) != 2 {
		t.Fatalf("%d marker calls", len(calls))
	}
	wantMarkers(t, calls[1], 1001, 1, false, tp("b", 0))
	// The producer id allocator of the new host is used for new ids only.
	mustInit(t, c2, "new", 2000, 0)
	if got := c2.metrics.byState[CompleteCommit].Load(); got != 2 {
		t.Fatalf("CompleteCommit gauge %d", got)
	}
}

// writeRecord appends the record of m (nil: tombstone) for id to h's state topic.
func writeRecord(t *testing.T, h *testHost, id string, m *meta) {
	t.Helper()
	rec := logstore.Record{Key: stateKey(id)}
	if m != nil {
		rec.Value = stateValue(m)
	}
	appendRecord(t, h, partitionFor(id, int32(len(h.logs))), rec)
}

// writeJunk appends a record whose key is not a transaction key, and one with a bad value.
func writeJunk(t *testing.T, h *testHost, p int32) {
	t.Helper()
	appendRecord(t, h, p, logstore.Record{Key: []byte{0, 5, 1, 2}, Value: []byte("x")})
	appendRecord(t, h, p, logstore.Record{Key: stateKey("junk"), Value: []byte{0, 0, 1}})
}

func appendRecord(t *testing.T, h *testHost, p int32, rec logstore.Record) {
	t.Helper()
	batch := logstore.AppendBatch(nil, logstore.BatchSpec{
		BaseTimestamp: t0, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, Records: []logstore.Record{rec},
	})
	if err := h.AppendState(p, batch); err != nil {
		t.Fatal(err)
	}
}
