package txn

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestAddPartitionsToTxnMovesToOngoing: the first AddPartitionsToTxn starts the transaction
// (Ongoing, start time now) and stores the partitions before answering; adding partitions
// already in it stores nothing; later ones are merged, the start time kept.
func TestAddPartitionsToTxnMovesToOngoing(t *testing.T) {
	c, h, clk := setup(t)
	mustInit(t, c, "p", 1000, 0)
	clk.advance(5)
	mustAdd(t, c, "p", 1000, 0, tp("a", 1), tp("a", 0))
	d := wantState(t, c, "p", "Ongoing", 1000, 0)
	if d.StartTimestamp != t0+5 || d.TimeoutMillis != 10000 || len(d.Topics) != 1 || d.Topics[0].Topic != "a" ||
		len(d.Topics[0].Partitions) != 2 || d.Topics[0].Partitions[0] != 0 || d.Topics[0].Partitions[1] != 1 {
		t.Fatalf("describe: %+v", d)
	}
	recs := recordsOf(t, h, "p")
	wantStates(t, recs, Empty, Ongoing)
	v := recs[1].value
	if v.StartTimestamp != t0+5 || v.LastUpdateTimestamp != t0+5 || len(v.Topics) != 1 || v.Topics[0].Topic != "a" ||
		len(v.Topics[0].Partitions) != 2 || v.Topics[0].Partitions[0] != 0 || v.Topics[0].Partitions[1] != 1 {
		t.Fatalf("Ongoing record: %+v", v)
	}

	mustAdd(t, c, "p", 1000, 0, tp("a", 0))
	if n := len(recordsOf(t, h, "p")); n != 2 {
		t.Fatalf("re-adding stored a record: %d", n)
	}
	clk.advance(5)
	mustAdd(t, c, "p", 1000, 0, tp("b", 0), tp("a", 0))
	recs = recordsOf(t, h, "p")
	wantStates(t, recs, Empty, Ongoing, Ongoing)
	v = recs[2].value
	if v.StartTimestamp != t0+5 || v.LastUpdateTimestamp != t0+10 || len(v.Topics) != 2 || v.Topics[1].Topic != "b" || v.Topics[1].Partitions[0] != 0 {
		t.Fatalf("merged record: %+v", v)
	}
	if got := c.metrics.started.Get(); got != 1 {
		t.Fatalf("started counter %d", got)
	}
	if got := c.metrics.byState[Ongoing].Load(); got != 1 {
		t.Fatalf("Ongoing gauge %d", got)
	}
}

// TestAddPartitionsToTxnErrors: an unknown id or another producer id is
// INVALID_PRODUCER_ID_MAPPING; another epoch PRODUCER_FENCED from v2, INVALID_PRODUCER_EPOCH
// before; a missing partition UNKNOWN_TOPIC_OR_PARTITION with OPERATION_NOT_ATTEMPTED for the
// others, adding nothing; an empty id INVALID_REQUEST.
func TestAddPartitionsToTxnErrors(t *testing.T) {
	c, h, _ := setup(t)
	one := func(version int16, id string, pid int64, epoch int16) int16 {
		t.Helper()
		codes := addV3(t, c, version, id, pid, epoch, tp("a", 0))
		if len(codes) != 1 {
			t.Fatalf("codes %v", codes)
		}
		return codes["a-0"]
	}
	if code := one(3, "nobody", 1, 0); code != errInvalidProducerIDMapping {
		t.Fatalf("unknown id: %d", code)
	}
	mustInit(t, c, "e", 1000, 0)
	for _, tc := range []struct {
		version int16
		pid     int64
		epoch   int16
		code    int16
	}{
		{3, 999, 0, errInvalidProducerIDMapping},
		{1, 1000, 1, errInvalidProducerEpoch},
		{2, 1000, 1, errProducerFenced},
		{0, 1000, -1, errInvalidProducerEpoch},
	} {
		if code := one(tc.version, "e", tc.pid, tc.epoch); code != tc.code {
			t.Fatalf("v%d pid %d epoch %d: %d, want %d", tc.version, tc.pid, tc.epoch, code, tc.code)
		}
	}
	if code := one(3, "", 1000, 0); code != errInvalidRequest {
		t.Fatalf("empty id: %d", code)
	}
	codes := addV3(t, c, 3, "e", 1000, 0, tp("a", 0), tp("zz", 0), tp("a", 5))
	if len(codes) != 3 || codes["a-0"] != errOperationNotAttempted || codes["zz-0"] != errUnknownTopicOrPartition || codes["a-5"] != errUnknownTopicOrPartition {
		t.Fatalf("missing partitions: %v", codes)
	}
	wantState(t, c, "e", "Empty", 1000, 0)
	if n := len(recordsOf(t, h, "e")); n != 1 {
		t.Fatalf("%d records after failed adds", n)
	}
}

// TestAddPartitionsToTxnBatchedVerifyOnlyKIP890: v4 carries several transactions; a
// VerifyOnly one answers per partition whether it is in the ongoing transaction (0 or
// INVALID_TXN_STATE) and adds nothing; producer checks apply to it as to an add.
func TestAddPartitionsToTxnBatchedVerifyOnlyKIP890(t *testing.T) {
	c, h, _ := setup(t)
	mustInit(t, c, "v", 1000, 0)
	mustInit(t, c, "w", 1001, 0)
	mustAdd(t, c, "v", 1000, 0, tp("a", 0))
	before := len(readRecords(t, h))

	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = 4
	tx := func(id string, pid int64, epoch int16, verify bool, tps ...TopicPartition) {
		rt := kmsg.NewAddPartitionsToTxnRequestTransaction()
		rt.TransactionalID, rt.ProducerID, rt.ProducerEpoch, rt.VerifyOnly = id, pid, epoch, verify
		for _, x := range tps {
			topic := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
			topic.Topic, topic.Partitions = x.Topic, []int32{x.Partition}
			rt.Topics = append(rt.Topics, topic)
		}
		req.Transactions = append(req.Transactions, rt)
	}
	tx("v", 1000, 0, true, tp("a", 0), tp("a", 1), tp("b", 0))
	tx("v", 1000, 1, true, tp("a", 0))
	tx("nobody", 5, 0, true, tp("a", 0))
	tx("v", 1000, 0, true, tp("a", 0), tp("zz", 3))
	tx("w", 1001, 0, false, tp("b", 0))
	resp := c.AddPartitionsToTxn(req)
	if resp.ErrorCode != 0 || len(resp.Topics) != 0 || len(resp.Transactions) != 5 {
		t.Fatalf("response: %+v", resp)
	}
	want := []struct {
		id    string
		codes map[TopicPartition]int16
	}{
		{"v", map[TopicPartition]int16{tp("a", 0): 0, tp("a", 1): errInvalidTxnState, tp("b", 0): errInvalidTxnState}},
		{"v", map[TopicPartition]int16{tp("a", 0): errProducerFenced}},
		{"nobody", map[TopicPartition]int16{tp("a", 0): errInvalidProducerIDMapping}},
		{"v", map[TopicPartition]int16{tp("a", 0): errOperationNotAttempted, tp("zz", 3): errUnknownTopicOrPartition}},
		{"w", map[TopicPartition]int16{tp("b", 0): 0}},
	}
	for i, w := range want {
		got := resp.Transactions[i]
		n := 0
		for _, rt := range got.Topics {
			for _, rp := range rt.Partitions {
				n++
				if code, ok := w.codes[tp(rt.Topic, rp.Partition)]; !ok || code != rp.ErrorCode {
					t.Fatalf("transaction %d (%s) %s-%d: %d, want %v", i, got.TransactionalID, rt.Topic, rp.Partition, rp.ErrorCode, w.codes)
				}
			}
		}
		if got.TransactionalID != w.id || n != len(w.codes) {
			t.Fatalf("transaction %d: %+v, want %s %v", i, got, w.id, w.codes)
		}
	}
	// Verification added nothing; the add of w did.
	d := wantState(t, c, "v", "Ongoing", 1000, 0)
	if len(d.Topics) != 1 || len(d.Topics[0].Partitions) != 1 {
		t.Fatalf("v after verification: %+v", d)
	}
	wantState(t, c, "w", "Ongoing", 1001, 0)
	if n := len(readRecords(t, h)); n != before+1 {
		t.Fatalf("%d records, want %d", n, before+1)
	}
}

// TestAddOffsetsToTxnAddsGroupPartition: AddOffsetsToTxn adds the group's partition of
// __consumer_offsets, which then gets the transaction's marker; PRODUCER_FENCED from v2.
func TestAddOffsetsToTxnAddsGroupPartition(t *testing.T) {
	c, h, _ := setup(t)
	mustInit(t, c, "o", 1000, 0)
	add := func(version int16, group string, epoch int16) int16 {
		req := kmsg.NewPtrAddOffsetsToTxnRequest()
		req.Version, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = version, "o", 1000, epoch, group
		return c.AddOffsetsToTxn(req).ErrorCode
	}
	if code := add(3, "g", 0); code != 0 {
		t.Fatalf("AddOffsetsToTxn: %d", code)
	}
	d := wantState(t, c, "o", "Ongoing", 1000, 0)
	if len(d.Topics) != 1 || d.Topics[0].Topic != "__consumer_offsets" || d.Topics[0].Partitions[0] != 7 {
		t.Fatalf("describe: %+v", d)
	}
	if code := add(1, "g", 3); code != errInvalidProducerEpoch {
		t.Fatalf("v1 wrong epoch: %d", code)
	}
	if code := add(2, "g", 3); code != errProducerFenced {
		t.Fatalf("v2 wrong epoch: %d", code)
	}
	if code := add(3, "", 0); code != errCoordinatorNotAvailable {
		t.Fatalf("no group coordinator: %d", code)
	}
	if code := endTxn(c, 3, "o", 1000, 0, true); code != 0 {
		t.Fatalf("EndTxn: %d", code)
	}
	calls := h.markerCalls()
	if len(calls) != 1 {
		t.Fatalf("%d marker calls", len(calls))
	}
	wantMarkers(t, calls[0], 1000, 0, true, tp("__consumer_offsets", 7))
}

// TestVerifyPartitionKIP890: the produce-path check answers 0 only for a partition of the
// producer's ongoing transaction, Kafka's codes otherwise (an old epoch as
// INVALID_PRODUCER_EPOCH, as producers expect), and allocates nothing.
func TestVerifyPartitionKIP890(t *testing.T) {
	h := openTestHost(t, t.TempDir(), 1000)
	clk := &clock{}
	c := newTestCoordinator(t, h, testConfig(), clk)
	if code := c.VerifyPartition("x", 1, 0, tp("a", 0)); code != errNotCoordinator {
		t.Fatalf("before Ensure: %d", code)
	}
	if code := c.Ensure(); code != 0 {
		t.Fatal(code)
	}
	mustInit(t, c, "x", 1000, 0)
	if code := c.VerifyPartition("x", 1000, 0, tp("a", 0)); code != errInvalidTxnState {
		t.Fatalf("Empty: %d", code)
	}
	mustAdd(t, c, "x", 1000, 0, tp("a", 0))
	for _, tc := range []struct {
		id    string
		pid   int64
		epoch int16
		tp    TopicPartition
		code  int16
	}{
		{"x", 1000, 0, tp("a", 0), 0},
		{"x", 1000, 0, tp("a", 1), errInvalidTxnState},
		{"x", 1000, 1, tp("a", 0), errInvalidProducerEpoch},
		{"x", 999, 0, tp("a", 0), errInvalidProducerIDMapping},
		{"y", 1000, 0, tp("a", 0), errInvalidProducerIDMapping},
		{"", 1000, 0, tp("a", 0), errInvalidRequest},
	} {
		if code := c.VerifyPartition(tc.id, tc.pid, tc.epoch, tc.tp); code != tc.code {
			t.Fatalf("%+v: %d", tc, code)
		}
	}
	target := tp("a", 0)
	if n := testing.AllocsPerRun(100, func() { c.VerifyPartition("x", 1000, 0, target) }); n != 0 {
		t.Fatalf("VerifyPartition allocates %v", n)
	}
	if code := endTxn(c, 3, "x", 1000, 0, true); code != 0 {
		t.Fatal(code)
	}
	if code := c.VerifyPartition("x", 1000, 0, tp("a", 0)); code != errInvalidTxnState {
		t.Fatalf("after commit: %d", code)
	}
	for in, want := range map[int16]int16{
		errConcurrentTransactions: errNotEnoughReplicas, errNotCoordinator: errNotEnoughReplicas,
		errCoordinatorLoadInProgress: errNotEnoughReplicas, errInvalidTxnState: errInvalidTxnState, 0: 0,
	} {
		if got := ProduceErrorCode(in); got != want {
			t.Fatalf("ProduceErrorCode(%d) = %d, want %d", in, got, want)
		}
	}
}
