package txn

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestInitProducerIDNewIDThenEpochBump: a new transactional id gets a fresh producer id at
// epoch 0, each later InitProducerId bumps the epoch; each is an Empty record with null
// partitions and no start time. Without a transactional id: a fresh id, nothing stored.
func TestInitProducerIDNewIDThenEpochBump(t *testing.T) {
	c, h, clk := setup(t)
	mustInit(t, c, "tx", 1000, 0)
	clk.advance(7)
	mustInit(t, c, "tx", 1000, 1)
	d := wantState(t, c, "tx", "Empty", 1000, 1)
	if d.TimeoutMillis != 10000 || d.StartTimestamp != -1 || len(d.Topics) != 0 {
		t.Fatalf("describe: %+v", d)
	}

	recs := recordsOf(t, h, "tx")
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	for i, r := range recs {
		v := r.value
		if r.partition != partitionFor("tx", 3) || r.key.Version != 0 || v == nil || v.Version != 0 {
			t.Fatalf("record %d: partition %d key v%d value %+v", i, r.partition, r.key.Version, v)
		}
		if v.ProducerID != 1000 || v.ProducerEpoch != int16(i) || v.TimeoutMillis != 10000 || v.State != 0 ||
			v.Topics != nil || v.StartTimestamp != -1 || v.LastUpdateTimestamp != t0+7*int64(i) {
			t.Fatalf("record %d: %+v", i, v)
		}
	}

	req := kmsg.NewPtrInitProducerIDRequest()
	req.Version = 4
	if r := c.InitProducerID(req); r.ErrorCode != 0 || r.ProducerID != 1001 || r.ProducerEpoch != 0 {
		t.Fatalf("idempotent InitProducerId: %+v", r)
	}
	if n := len(readRecords(t, h)); n != 2 {
		t.Fatalf("idempotent InitProducerId stored something: %d records", n)
	}
	if r := initPID(t, c, 4, "", 10000, -1, -1); r.ErrorCode != errInvalidRequest || r.ProducerID != -1 || r.ProducerEpoch != -1 {
		t.Fatalf("empty id: %+v", r)
	}
	if got := c.metrics.byState[Empty].Load(); got != 1 {
		t.Fatalf("Empty gauge %d", got)
	}
}

// TestInitProducerIDInvalidTransactionTimeout: timeouts <= 0 or above
// transaction.max.timeout.ms are INVALID_TRANSACTION_TIMEOUT, and nothing is created.
func TestInitProducerIDInvalidTransactionTimeout(t *testing.T) {
	c, h, _ := setup(t)
	for _, ms := range []int32{0, -1, 60001} {
		if r := initPID(t, c, 4, "bad", ms, -1, -1); r.ErrorCode != errInvalidTransactionTimeout || r.ProducerID != -1 {
			t.Fatalf("timeout %d: %+v", ms, r)
		}
	}
	if d := describe(t, c, "bad"); d.ErrorCode != errTransactionalIDNotFound {
		t.Fatalf("describe: %+v", d)
	}
	if r := initPID(t, c, 4, "bad", 60000, -1, -1); r.ErrorCode != 0 || r.ProducerEpoch != 0 {
		t.Fatalf("max timeout: %+v", r)
	}
	if n := len(readRecords(t, h)); n != 1 {
		t.Fatalf("%d records, want 1", n)
	}
}

// TestInitProducerIDEpochExhaustionRotatesProducerID: at epoch 32766 (isEpochExhausted: one
// epoch stays for fencing) InitProducerId hands out a new producer id at epoch 0; a KIP-360
// request doing so remembers the old epoch, so its retry gets the same answer, while an older
// epoch of the old producer id is fenced. Records written before the start are loaded.
func TestInitProducerIDEpochExhaustionRotatesProducerID(t *testing.T) {
	h := openTestHost(t, t.TempDir(), 1000)
	if _, err := h.StateTopic(true, 3); err != nil {
		t.Fatal(err)
	}
	writeRecord(t, h, "ex", &meta{producerID: 77, producerEpoch: 32765, timeoutMs: 5000, state: CompleteCommit, startMs: t0 - 10, updateMs: t0 - 5})
	writeRecord(t, h, "ex2", &meta{producerID: 78, producerEpoch: 32766, timeoutMs: 5000, state: Empty, startMs: -1, updateMs: t0 - 5})
	writeRecord(t, h, "ex3", &meta{producerID: 79, producerEpoch: 32765, timeoutMs: 5000, state: CompleteAbort, startMs: t0 - 10, updateMs: t0 - 5})
	writeJunk(t, h, 0) // a record of another key version is skipped
	clk := &clock{}
	clk.ms.Store(t0)
	c := newTestCoordinator(t, h, testConfig(), clk)
	d := wantState(t, c, "ex", "CompleteCommit", 77, 32765)
	if d.TimeoutMillis != 5000 || d.StartTimestamp != t0-10 {
		t.Fatalf("loaded: %+v", d)
	}

	mustInit(t, c, "ex", 77, 32766)
	mustInit(t, c, "ex", 1000, 0) // exhausted: rotated
	wantState(t, c, "ex", "Empty", 1000, 0)

	// KIP-360: the producer of ex2 (78, 32766) asks for a bump.
	if r := initPID(t, c, 4, "ex2", 10000, 78, 32766); r.ErrorCode != 0 || r.ProducerID != 1001 || r.ProducerEpoch != 0 {
		t.Fatalf("rotate: %+v", r)
	}
	if r := initPID(t, c, 4, "ex2", 10000, 78, 32766); r.ErrorCode != 0 || r.ProducerID != 1001 || r.ProducerEpoch != 0 {
		t.Fatalf("retry of the rotation: %+v", r)
	}
	if r := initPID(t, c, 4, "ex2", 10000, 78, 32765); r.ErrorCode != errProducerFenced {
		t.Fatalf("older epoch of the old producer id: %+v", r)
	}
	wantState(t, c, "ex2", "Empty", 1001, 0)

	// A KIP-360 bump that reaches 32766, retried: the same answer, not a rotation.
	for i := 0; i < 2; i++ {
		if r := initPID(t, c, 4, "ex3", 10000, 79, 32765); r.ErrorCode != 0 || r.ProducerID != 79 || r.ProducerEpoch != 32766 {
			t.Fatalf("bump to 32766, try %d: %+v", i, r)
		}
	}
	if r := initPID(t, c, 4, "ex3", 10000, 79, 32764); r.ErrorCode != errProducerFenced {
		t.Fatalf("older epoch at exhaustion: %+v", r)
	}
	if r := initPID(t, c, 4, "ex3", 10000, 79, 32766); r.ErrorCode != 0 || r.ProducerID != 1002 || r.ProducerEpoch != 0 {
		t.Fatalf("rotation from 32766: %+v", r)
	}
}

// TestInitProducerIDKIP360RetryAndFencing: with a producer id and epoch (v3+), the current
// epoch gets a bump; a retry of that bump (the previous epoch) gets the same answer; any other
// epoch or producer id is PRODUCER_FENCED (INVALID_PRODUCER_EPOCH below v4); a plain
// InitProducerId forgets the previous epoch. Before v3 the fields are ignored.
func TestInitProducerIDKIP360RetryAndFencing(t *testing.T) {
	c, _, _ := setup(t)
	mustInit(t, c, "k", 1000, 0)
	for i, tc := range []struct {
		version   int16
		pid       int64
		epoch     int16
		code      int16
		wantEpoch int16
	}{
		{4, 1000, 0, 0, 1},                        // bump from the current epoch
		{4, 1000, 0, 0, 1},                        // retry: same answer
		{3, 1000, 0, 0, 1},                        // and again
		{4, 1000, 5, errProducerFenced, -1},       // neither current nor previous
		{3, 1000, 5, errInvalidProducerEpoch, -1}, // the same before KIP-588
		{4, 999, 1, errProducerFenced, -1},        // another producer id
		{4, 1000, 1, 0, 2},                        // current again: bump
		{4, -1, 3, errInvalidRequest, -1},         // an epoch without an id
		{2, 5, 5, 0, 3},                           // v2: fields ignored, plain bump
		{4, 1000, 1, errProducerFenced, -1},       // the plain bump forgot the previous epoch
	} {
		r := initPID(t, c, tc.version, "k", 10000, tc.pid, tc.epoch)
		if r.ErrorCode != tc.code {
			t.Fatalf("case %d: code %d, want %d", i, r.ErrorCode, tc.code)
		}
		if tc.code != 0 {
			if r.ProducerID != -1 || r.ProducerEpoch != -1 {
				t.Fatalf("case %d: error with id %d/%d", i, r.ProducerID, r.ProducerEpoch)
			}
			continue
		}
		if r.ProducerID != 1000 || r.ProducerEpoch != tc.wantEpoch {
			t.Fatalf("case %d: %d/%d, want 1000/%d", i, r.ProducerID, r.ProducerEpoch, tc.wantEpoch)
		}
	}
	// A KIP-360 request for an id this coordinator has never seen starts it at epoch 0.
	if r := initPID(t, c, 4, "fresh", 10000, 4242, 9); r.ErrorCode != 0 || r.ProducerID != 1001 || r.ProducerEpoch != 0 {
		t.Fatalf("fresh id with KIP-360 fields: %+v", r)
	}
}

// TestInitProducerIDFencesOngoingTransaction: InitProducerId for an id with an Ongoing
// transaction aborts it at a bumped epoch (the abort markers carry that epoch) and answers
// CONCURRENT_TRANSACTIONS; the old producer is fenced; the retry bumps once more.
func TestInitProducerIDFencesOngoingTransaction(t *testing.T) {
	c, h, _ := setup(t)
	mustInit(t, c, "f", 1000, 0)
	mustAdd(t, c, "f", 1000, 0, tp("b", 0), tp("a", 0))
	if r := initPID(t, c, 4, "f", 10000, -1, -1); r.ErrorCode != errConcurrentTransactions || r.ProducerID != -1 {
		t.Fatalf("InitProducerId during a transaction: %+v", r)
	}
	calls := h.markerCalls()
	if len(calls) != 1 {
		t.Fatalf("%d marker calls", len(calls))
	}
	wantMarkers(t, calls[0], 1000, 1, false, tp("a", 0), tp("b", 0))
	wantState(t, c, "f", "CompleteAbort", 1000, 1)
	recs := recordsOf(t, h, "f")
	wantStates(t, recs, Empty, Ongoing, PrepareAbort, CompleteAbort)
	if e := recs[2].value.ProducerEpoch; e != 1 {
		t.Fatalf("PrepareAbort epoch %d", e)
	}
	if code := endTxn(c, 3, "f", 1000, 0, true); code != errProducerFenced {
		t.Fatalf("old producer's EndTxn: %d", code)
	}
	mustInit(t, c, "f", 1000, 2)
	if got := c.metrics.aborted.Get(); got != 1 {
		t.Fatalf("aborted counter %d", got)
	}
}

func wantMarkers(t *testing.T, m markerCall, pid int64, epoch int16, commit bool, parts ...TopicPartition) {
	t.Helper()
	if m.producerID != pid || m.epoch != epoch || m.commit != commit || m.coordEpoch != 0 || len(m.parts) != len(parts) {
		t.Fatalf("markers %+v, want pid %d epoch %d commit %v %v", m, pid, epoch, commit, parts)
	}
	for i := range parts {
		if m.parts[i] != parts[i] {
			t.Fatalf("markers %+v, want partitions %v", m, parts)
		}
	}
}

func wantStates(t *testing.T, recs []storedRecord, states ...State) {
	t.Helper()
	if len(recs) != len(states) {
		t.Fatalf("%d records, want %d", len(recs), len(states))
	}
	for i, r := range recs {
		if r.value == nil || State(r.value.State) != states[i] {
			t.Fatalf("record %d: %+v, want state %s", i, r.value, states[i])
		}
	}
}
