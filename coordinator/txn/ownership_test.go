package txn

import (
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/internal/election/electiontest"
	"github.com/spate-broker/spate/logstore"
)

// gatedHost is a testHost whose loads can be held (Hold) and are counted (Passes), and whose
// appends to a partition refused (Refuse) fail as a follower's do (NOT_LEADER_OR_FOLLOWER).
type gatedHost struct {
	*testHost
	electiontest.Gate
}

func (h *gatedHost) StateLog(p int32) *logstore.Log {
	h.Pass()
	return h.testHost.StateLog(p)
}

func (h *gatedHost) AppendState(p int32, batch []byte) error {
	if h.Refused(p) {
		return &logstore.Error{Code: errNotLeaderOrFollower, Msg: "not the leader"}
	}
	return h.testHost.AppendState(p, batch)
}

func ownedConfig() Config {
	c := testConfig()
	c.PartitionOwnership = true
	return c
}

// newOwned starts a coordinator with PartitionOwnership on h, and closes it at the end.
func newOwned(t *testing.T, h Host, clk *clock) *Coordinator {
	t.Helper()
	c, err := newCoordinator(ownedConfig(), h, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})), metrics.NewSet(), clk.now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// ownedSetup returns a coordinator with PartitionOwnership whose topic exists, over a fresh
// folder, with nothing elected.
func ownedSetup(t *testing.T) (*Coordinator, *gatedHost, *clock) {
	t.Helper()
	h := &gatedHost{testHost: openTestHost(t, t.TempDir(), 1000)}
	clk := &clock{}
	clk.ms.Store(t0)
	c := newOwned(t, h, clk)
	if code := c.Ensure(); code != 0 {
		t.Fatalf("Ensure: %d", code)
	}
	return c, h, clk
}

// idIn returns a transactional id that lives in partition p of the 3-partition state topic.
func idIn(p int32, prefix string) string {
	for i := 0; ; i++ {
		if id := fmt.Sprintf("%s-%d", prefix, i); partitionFor(id, 3) == p {
			return id
		}
	}
}

func waitOwns(t *testing.T, c *Coordinator, p int32) {
	t.Helper()
	electiontest.WaitLoaded(t, c.Owns, p)
}

// txnCodes sends every transactional API for id and returns each one's code.
func txnCodes(t *testing.T, c *Coordinator, id string) map[string]int16 {
	t.Helper()
	out := map[string]int16{}
	out["InitProducerId"] = initPID(t, c, 4, id, 10000, -1, -1).ErrorCode
	codes := addV3(t, c, 3, id, 1000, 0, tp("a", 0), tp("b", 0))
	if codes["a-0"] != codes["b-0"] {
		t.Fatalf("AddPartitionsToTxn: %v", codes)
	}
	out["AddPartitionsToTxn"] = codes["a-0"]
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = 4
	tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
	tx.TransactionalID, tx.ProducerID, tx.VerifyOnly = id, 1000, true
	tx.Topics = []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: "a", Partitions: []int32{0}}}
	req.Transactions = append(req.Transactions, tx)
	out["AddPartitionsToTxn verify"] = c.AddPartitionsToTxn(req).Transactions[0].Topics[0].Partitions[0].ErrorCode
	ao := kmsg.NewPtrAddOffsetsToTxnRequest()
	ao.Version, ao.TransactionalID, ao.ProducerID, ao.Group = 3, id, 1000, "g"
	out["AddOffsetsToTxn"] = c.AddOffsetsToTxn(ao).ErrorCode
	out["EndTxn"] = endTxn(c, 3, id, 1000, 0, true)
	out["VerifyPartition"] = c.VerifyPartition(id, 1000, 0, tp("a", 0))
	d := describe(t, c, id)
	if d.ErrorCode != 0 && d.State != "" {
		t.Fatalf("DescribeTransactions with error %d: state %q", d.ErrorCode, d.State)
	}
	out["DescribeTransactions"] = d.ErrorCode
	return out
}

func wantAll(t *testing.T, what string, codes map[string]int16, code int16) {
	t.Helper()
	if len(codes) != 7 {
		t.Fatalf("%s: %d APIs", what, len(codes))
	}
	for api, got := range codes {
		if got != code {
			t.Errorf("%s: %s answered %d, want %d", what, api, got, code)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

func listIDs(c *Coordinator) (string, int16) {
	r := c.ListTransactions(kmsg.NewPtrListTransactionsRequest())
	var out []string
	for _, s := range r.TransactionStates {
		out = append(out, s.TransactionalID+"/"+s.TransactionState)
	}
	return fmt.Sprint(out), r.ErrorCode
}

// TestOwnershipNotCoordinatorUntilElected: with PartitionOwnership, Ensure creates the topic
// and reads nothing; every API for a transactional id whose partition is not elected here
// answers NOT_COORDINATOR (COORDINATOR_LOAD_IN_PROGRESS while it loads), ListTransactions lists
// nothing (COORDINATOR_LOAD_IN_PROGRESS while loading); an InitProducerId without an id is
// served anywhere; once loaded the id is served.
func TestOwnershipNotCoordinatorUntilElected(t *testing.T) {
	c, h, _ := ownedSetup(t)
	if len(h.logs) != 3 || h.Passes() != 0 {
		t.Fatalf("Ensure: %d partitions, %d logs read", len(h.logs), h.Passes())
	}
	id := idIn(1, "x")
	wantAll(t, "not elected", txnCodes(t, c, id), errNotCoordinator)
	if ids, code := listIDs(c); ids != "[]" || code != 0 {
		t.Fatalf("ListTransactions: %s %d", ids, code)
	}
	req := kmsg.NewPtrInitProducerIDRequest()
	req.Version = 4
	if r := c.InitProducerID(req); r.ErrorCode != 0 || r.ProducerID != 1000 || r.ProducerEpoch != 0 {
		t.Fatalf("idempotent InitProducerId: %+v", r)
	}

	release := h.Hold()
	defer release()
	c.OnElection(1, 3)
	wantAll(t, "loading", txnCodes(t, c, id), errCoordinatorLoadInProgress)
	if ids, code := listIDs(c); ids != "[]" || code != errCoordinatorLoadInProgress {
		t.Fatalf("ListTransactions while loading: %s %d", ids, code)
	}
	release()
	waitOwns(t, c, 1)
	if c.Owns(0) || c.Owns(2) {
		t.Fatal("Owns a partition not elected")
	}
	mustInit(t, c, id, 1001, 0)
	other := idIn(2, "y")
	if r := initPID(t, c, 4, other, 10000, -1, -1); r.ErrorCode != errNotCoordinator {
		t.Fatalf("InitProducerId of another partition's id: %+v", r)
	}
	if ids, code := listIDs(c); ids != fmt.Sprintf("[%s/Empty]", id) || code != 0 {
		t.Fatalf("ListTransactions: %s %d", ids, code)
	}
}

// TestOwnershipLeaderMove: coordinator A serves partitions p and q; a transaction of p is in
// PrepareCommit, its markers blocked, when A resigns p. A's ids of p answer NOT_COORDINATOR,
// those of q are still served; B, on the same logs, elected for p, writes the markers again
// with its coordinator epoch and records CompleteCommit; A, once its markers return, records
// nothing. The timeout clock of p's Ongoing transaction resumes on B, and each coordinator's
// background loops act on its own ids only.
func TestOwnershipLeaderMove(t *testing.T) {
	a, h, clk := ownedSetup(t)
	const p, q = 0, 2
	x, z, y := idIn(p, "x"), idIn(p, "z"), idIn(q, "y")
	a.OnElection(p, 1)
	a.OnElection(q, 7)
	waitOwns(t, a, p)
	waitOwns(t, a, q)
	mustInit(t, a, x, 1000, 0)
	mustAdd(t, a, x, 1000, 0, tp("a", 0), tp("b", 0))
	mustInit(t, a, z, 1001, 0)
	mustAdd(t, a, z, 1001, 0, tp("a", 1))
	mustInit(t, a, y, 1002, 0)
	mustAdd(t, a, y, 1002, 0, tp("b", 0))

	block, entered := make(chan struct{}), make(chan struct{}, 1)
	h.mu.Lock()
	h.block, h.entered = block, entered
	h.mu.Unlock()
	ended := make(chan int16, 1)
	go func() { ended <- endTxn(a, 3, x, 1000, 0, true) }()
	<-entered
	released := false
	defer func() {
		if !released {
			close(block)
		}
	}()
	wantState(t, a, x, "PrepareCommit", 1000, 0)
	h.mu.Lock()
	h.block = nil // B's markers go through
	h.mu.Unlock()

	a.OnResignation(p, 2)
	if a.Owns(p) || !a.Owns(q) {
		t.Fatalf("after resignation: Owns(p) %v Owns(q) %v", a.Owns(p), a.Owns(q))
	}
	wantAll(t, "resigned", txnCodes(t, a, x), errNotCoordinator)
	wantState(t, a, y, "Ongoing", 1002, 0)
	if ids, code := listIDs(a); ids != fmt.Sprintf("[%s/Ongoing]", y) || code != 0 {
		t.Fatalf("ListTransactions on A: %s %d", ids, code)
	}
	if pc, og := a.metrics.byState[PrepareCommit].Load(), a.metrics.byState[Ongoing].Load(); pc != 0 || og != 1 {
		t.Fatalf("A's gauges: PrepareCommit %d, Ongoing %d, want 0 1", pc, og)
	}

	b := newOwned(t, h, clk)
	if d := describe(t, b, x); d.ErrorCode != errNotCoordinator {
		t.Fatalf("B before election: %+v", d)
	}
	b.OnElection(p, 2)
	waitOwns(t, b, p)
	waitState(t, b, x, "CompleteCommit")
	wantState(t, b, z, "Ongoing", 1001, 0)
	if d := describe(t, b, y); d.ErrorCode != errNotCoordinator {
		t.Fatalf("B describes an id of q: %+v", d)
	}
	calls := h.markerCalls()
	if len(calls) != 2 {
		t.Fatalf("%d marker calls", len(calls))
	}
	for i, ce := range []int32{1, 2} {
		m := calls[i]
		if m.producerID != 1000 || m.epoch != 0 || !m.commit || m.coordEpoch != ce || fmt.Sprint(m.parts) != "[{a 0} {b 0}]" {
			t.Fatalf("marker call %d: %+v, want coordinator epoch %d", i, m, ce)
		}
	}

	// A's markers return: it answers (the outcome is in the log) and records nothing.
	close(block)
	released = true
	select {
	case code := <-ended:
		if code != 0 {
			t.Fatalf("A's EndTxn: %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("A's EndTxn not answered")
	}
	wantStates(t, recordsOf(t, h.testHost, x), Empty, Ongoing, PrepareCommit, CompleteCommit)
	mustInit(t, b, x, 1000, 1)

	// The timeout clock: z on B, y on A.
	clk.advance(10001)
	if n := a.AbortTimedOutTransactions(); n != 1 {
		t.Fatalf("A aborted %d", n)
	}
	if n := b.AbortTimedOutTransactions(); n != 1 {
		t.Fatalf("B aborted %d", n)
	}
	waitState(t, b, z, "CompleteAbort")
	waitState(t, a, y, "CompleteAbort")
	for _, m := range h.markerCalls()[2:] {
		want := map[int64]int32{1001: 2, 1002: 7}[m.producerID]
		if m.commit || m.epoch != 1 || m.coordEpoch != want {
			t.Fatalf("abort markers %+v, want coordinator epoch %d", m, want)
		}
	}
	if n := len(h.markerCalls()); n != 4 {
		t.Fatalf("%d marker calls", n)
	}

	// Expiration: each coordinator forgets its own ids.
	clk.advance(testConfig().TransactionalIDExpirationMs)
	if n := a.RemoveExpiredTransactionalIDs(); n != 1 {
		t.Fatalf("A expired %d", n)
	}
	if n := b.RemoveExpiredTransactionalIDs(); n != 2 {
		t.Fatalf("B expired %d", n)
	}
}

// TestOwnershipResignationStopsMarkerRetries: markers retried for a failing partition stop
// when the transaction's partition is resigned; nothing is recorded, and EndTxn answers (the
// outcome is in the log).
func TestOwnershipResignationStopsMarkerRetries(t *testing.T) {
	c, h, _ := ownedSetup(t)
	const p = 1
	id := idIn(p, "r")
	c.OnElection(p, 4)
	waitOwns(t, c, p)
	mustInit(t, c, id, 1000, 0)
	mustAdd(t, c, id, 1000, 0, tp("a", 0))
	entered := make(chan struct{}, 1)
	h.mu.Lock()
	h.entered = entered
	h.codes = func(int, []TopicPartition) []int16 { return []int16{errNotLeaderOrFollower} }
	h.mu.Unlock()
	done := make(chan int16, 1)
	go func() { done <- endTxn(c, 3, id, 1000, 0, false) }()
	<-entered
	c.OnResignation(p, 5)
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("EndTxn: %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("EndTxn not answered after the resignation")
	}
	n := len(h.markerCalls())
	time.Sleep(50 * time.Millisecond)
	if m := len(h.markerCalls()); m != n {
		t.Fatalf("markers still retried: %d calls, then %d", n, m)
	}
	for _, m := range h.markerCalls() {
		if m.coordEpoch != 4 {
			t.Fatalf("marker %+v, want coordinator epoch 4", m)
		}
	}
	wantStates(t, recordsOf(t, h.testHost, id), Empty, Ongoing, PrepareAbort)
}

// TestOwnershipSupersededLoad: an election that supersedes one still loading (8, held, then 9)
// answers COORDINATOR_LOAD_IN_PROGRESS until it is loaded, then serves what is in the log; the
// superseded load installs nothing (the state gauge counts the id once); a resignation takes
// the ids out of the gauges. The epoch rules themselves (stale elections and resignations
// ignored, epoch -1 always applies) are internal/election's, tested there.
func TestOwnershipSupersededLoad(t *testing.T) {
	c, h, _ := ownedSetup(t)
	const p = 2
	id := idIn(p, "e")
	c.OnElection(p, 5)
	waitOwns(t, c, p)
	mustInit(t, c, id, 1000, 0)
	loads := h.Passes()
	c.OnResignation(p, 4) // stale
	if !c.Owns(p) || h.Passes() != loads {
		t.Fatalf("stale resignation: Owns %v, loads %d → %d", c.Owns(p), loads, h.Passes())
	}
	c.OnResignation(p, 7)
	if d := describe(t, c, id); d.ErrorCode != errNotCoordinator || c.Owns(p) {
		t.Fatalf("after resignation: %+v, Owns %v", d, c.Owns(p))
	}

	release := h.Hold()
	defer release()
	c.OnElection(p, 8)
	h.WaitPasses(t, loads) // election 8 is loading
	c.OnElection(p, 9)
	if d := describe(t, c, id); d.ErrorCode != errCoordinatorLoadInProgress {
		t.Fatalf("while 9 loads: %+v", d)
	}
	release()
	waitOwns(t, c, p)
	mustInit(t, c, id, 1000, 1)
	if n := c.metrics.byState[Empty].Load(); n != 1 {
		t.Fatalf("Empty gauge %d", n)
	}
	c.OnResignation(p, -1)
	if c.Owns(p) || c.metrics.byState[Empty].Load() != 0 {
		t.Fatalf("after resignation with epoch -1: Owns %v, Empty gauge %d", c.Owns(p), c.metrics.byState[Empty].Load())
	}
}

// TestOwnershipNotLeaderAppend: an append the host refuses because it does not lead the
// partition (NOT_LEADER_OR_FOLLOWER) answers NOT_COORDINATOR.
func TestOwnershipNotLeaderAppend(t *testing.T) {
	c, h, _ := ownedSetup(t)
	const p = 0
	id := idIn(p, "nl")
	c.OnElection(p, 0)
	waitOwns(t, c, p)
	mustInit(t, c, id, 1000, 0)
	h.Refuse(p)
	if r := initPID(t, c, 4, id, 10000, -1, -1); r.ErrorCode != errNotCoordinator {
		t.Fatalf("InitProducerId: %+v", r)
	}
	if codes := addV3(t, c, 3, id, 1000, 0, tp("a", 0)); codes["a-0"] != errNotCoordinator {
		t.Fatalf("AddPartitionsToTxn: %v", codes)
	}
	wantState(t, c, id, "Empty", 1000, 0)
}
