package txn

import (
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestListTransactionsFilters: KIP-664 state and producer id filters (unknown state names
// echoed back), KIP-994 duration filter (v1+; an id with no transaction yet always passes,
// as in Kafka), results sorted by id.
func TestListTransactionsFilters(t *testing.T) {
	c, _, clk := setup(t)
	mustInit(t, c, "l-empty", 1000, 0)
	mustInit(t, c, "l-ongoing", 1001, 0)
	mustInit(t, c, "l-commit", 1002, 0)
	mustAdd(t, c, "l-ongoing", 1001, 0, tp("a", 0))
	clk.advance(100)
	mustAdd(t, c, "l-commit", 1002, 0, tp("a", 1))
	if code := endTxn(c, 3, "l-commit", 1002, 0, true); code != 0 {
		t.Fatal(code)
	}
	clk.advance(900) // now t0+1000: l-ongoing began 1000 ms ago, l-commit 900

	list := func(version int16, states []string, pids []int64, duration int64) *kmsg.ListTransactionsResponse {
		req := kmsg.NewPtrListTransactionsRequest()
		req.Version, req.StateFilters, req.ProducerIDFilters, req.DurationFilterMillis = version, states, pids, duration
		return c.ListTransactions(req)
	}
	ids := func(r *kmsg.ListTransactionsResponse) []string {
		var out []string
		for _, s := range r.TransactionStates {
			out = append(out, s.TransactionalID)
		}
		return out
	}
	all := list(1, nil, nil, -1)
	if all.ErrorCode != 0 || !slices.Equal(ids(all), []string{"l-commit", "l-empty", "l-ongoing"}) {
		t.Fatalf("all: %+v", all)
	}
	for i, want := range []struct {
		pid   int64
		state string
	}{{1002, "CompleteCommit"}, {1000, "Empty"}, {1001, "Ongoing"}} {
		if s := all.TransactionStates[i]; s.ProducerID != want.pid || s.TransactionState != want.state {
			t.Fatalf("entry %d: %+v", i, s)
		}
	}
	for _, tc := range []struct {
		name     string
		version  int16
		states   []string
		pids     []int64
		duration int64
		want     []string
		unknown  []string
	}{
		{"state", 1, []string{"Ongoing", "Bogus"}, nil, -1, []string{"l-ongoing"}, []string{"Bogus"}},
		{"only unknown states", 1, []string{"ongoing"}, nil, -1, nil, []string{"ongoing"}},
		{"producer ids", 1, nil, []int64{1000, 1002, 5}, -1, []string{"l-commit", "l-empty"}, nil},
		{"duration", 1, nil, nil, 950, []string{"l-empty", "l-ongoing"}, nil},
		{"duration boundary", 1, nil, nil, 1000, []string{"l-empty"}, nil},
		{"duration ignored in v0", 0, nil, nil, 950, []string{"l-commit", "l-empty", "l-ongoing"}, nil},
		{"combined", 1, []string{"CompleteCommit", "Empty"}, []int64{1002}, -1, []string{"l-commit"}, nil},
		{"no match", 1, []string{"PrepareAbort"}, nil, -1, nil, nil},
	} {
		r := list(tc.version, tc.states, tc.pids, tc.duration)
		if r.ErrorCode != 0 || !slices.Equal(ids(r), tc.want) || !slices.Equal(r.UnknownStateFilters, tc.unknown) {
			t.Fatalf("%s: ids %v unknown %v code %d, want %v %v", tc.name, ids(r), r.UnknownStateFilters, r.ErrorCode, tc.want, tc.unknown)
		}
	}
	c.Drain()
	if r := list(1, nil, nil, -1); r.ErrorCode != errCoordinatorNotAvailable || len(r.TransactionStates) != 0 {
		t.Fatalf("after Drain: %+v", r)
	}
}

// TestDescribeTransactions: an unknown id is TRANSACTIONAL_ID_NOT_FOUND, an empty one
// INVALID_REQUEST; a known one has its state, producer, timeout, start and partitions; before
// the topic is loaded NOT_COORDINATOR, after Drain COORDINATOR_NOT_AVAILABLE.
func TestDescribeTransactions(t *testing.T) {
	h := openTestHost(t, t.TempDir(), 1000)
	clk := &clock{}
	clk.ms.Store(t0)
	c := newTestCoordinator(t, h, testConfig(), clk)
	if d := describe(t, c, "d"); d.ErrorCode != errNotCoordinator || d.TransactionalID != "d" {
		t.Fatalf("before Ensure: %+v", d)
	}
	if code := c.Ensure(); code != 0 {
		t.Fatal(code)
	}
	if d := describe(t, c, "unknown"); d.ErrorCode != errTransactionalIDNotFound || d.TransactionalID != "unknown" || d.State != "" {
		t.Fatalf("unknown: %+v", d)
	}
	if d := describe(t, c, ""); d.ErrorCode != errInvalidRequest {
		t.Fatalf("empty: %+v", d)
	}
	if r := initPID(t, c, 4, "d", 45000, -1, -1); r.ErrorCode != 0 {
		t.Fatal(r.ErrorCode)
	}
	clk.advance(20)
	mustAdd(t, c, "d", 1000, 0, tp("b", 0), tp("a", 1), tp("a", 0))
	d := wantState(t, c, "d", "Ongoing", 1000, 0)
	if d.TimeoutMillis != 45000 || d.StartTimestamp != t0+20 || len(d.Topics) != 2 ||
		d.Topics[0].Topic != "a" || !slices.Equal(d.Topics[0].Partitions, []int32{0, 1}) ||
		d.Topics[1].Topic != "b" || !slices.Equal(d.Topics[1].Partitions, []int32{0}) {
		t.Fatalf("describe: %+v", d)
	}
	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.TransactionalIDs = []string{"d", "unknown"}
	if r := c.DescribeTransactions(req); len(r.TransactionStates) != 2 || r.TransactionStates[0].ErrorCode != 0 ||
		r.TransactionStates[1].ErrorCode != errTransactionalIDNotFound {
		t.Fatalf("two ids: %+v", r)
	}
	c.Drain()
	if d := describe(t, c, "d"); d.ErrorCode != errCoordinatorNotAvailable {
		t.Fatalf("after Drain: %+v", d)
	}
}

// TestNotCoordinatorUntilEnsure: without __transaction_state every transactional request is
// NOT_COORDINATOR (the client then asks FindCoordinator, whose Ensure creates the topic) and
// ListTransactions lists nothing; after Drain everything is NOT_COORDINATOR.
func TestNotCoordinatorUntilEnsure(t *testing.T) {
	h := openTestHost(t, t.TempDir(), 1000)
	clk := &clock{}
	clk.ms.Store(t0)
	c := newTestCoordinator(t, h, testConfig(), clk)
	if r := initPID(t, c, 4, "n", 10000, -1, -1); r.ErrorCode != errNotCoordinator {
		t.Fatalf("InitProducerId: %+v", r)
	}
	if codes := addV3(t, c, 3, "n", 1, 0, tp("a", 0), tp("b", 0)); codes["a-0"] != errNotCoordinator || codes["b-0"] != errNotCoordinator {
		t.Fatalf("AddPartitionsToTxn: %v", codes)
	}
	if code := endTxn(c, 3, "n", 1, 0, true); code != errNotCoordinator {
		t.Fatalf("EndTxn: %d", code)
	}
	if r := c.ListTransactions(kmsg.NewPtrListTransactionsRequest()); r.ErrorCode != 0 || len(r.TransactionStates) != 0 {
		t.Fatalf("ListTransactions: %+v", r)
	}
	if n, _ := h.StateTopic(false, 0); n != 0 {
		t.Fatalf("topic created before Ensure: %d partitions", n)
	}
	if code := c.Ensure(); code != 0 {
		t.Fatalf("Ensure: %d", code)
	}
	if n, _ := h.StateTopic(false, 0); n != 3 {
		t.Fatalf("topic has %d partitions", n)
	}
	mustInit(t, c, "n", 1000, 0)
	c.Drain()
	if r := initPID(t, c, 4, "n", 10000, -1, -1); r.ErrorCode != errNotCoordinator {
		t.Fatalf("InitProducerId after Drain: %+v", r)
	}
	if code := c.Ensure(); code != errNotCoordinator {
		t.Fatalf("Ensure after Drain: %d", code)
	}
	if code := c.VerifyPartition("n", 1000, 0, tp("a", 0)); code != errNotCoordinator {
		t.Fatalf("VerifyPartition after Drain: %d", code)
	}
}
