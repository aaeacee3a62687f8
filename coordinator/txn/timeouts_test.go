package txn

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestTimedOutTransactionAbortedAndProducerFenced: an Ongoing transaction older than its
// timeout is aborted at a bumped epoch (abort markers with that epoch); the producer that ran
// it is then fenced on every request, and a new InitProducerId bumps again.
func TestTimedOutTransactionAbortedAndProducerFenced(t *testing.T) {
	c, h, clk := setup(t)
	mustInit(t, c, "to", 1000, 0)
	mustAdd(t, c, "to", 1000, 0, tp("a", 0))
	mustInit(t, c, "idle", 1001, 0) // no transaction: never timed out
	clk.advance(10000)
	if n := c.AbortTimedOutTransactions(); n != 0 {
		t.Fatalf("aborted %d at exactly the timeout", n)
	}
	clk.advance(1)
	if n := c.AbortTimedOutTransactions(); n != 1 {
		t.Fatalf("aborted %d, want 1", n)
	}
	waitState(t, c, "to", "CompleteAbort")
	wantState(t, c, "to", "CompleteAbort", 1000, 1)
	calls := h.markerCalls()
	if len(calls) != 1 {
		t.Fatalf("%d marker calls", len(calls))
	}
	wantMarkers(t, calls[0], 1000, 1, false, tp("a", 0))
	wantStates(t, recordsOf(t, h, "to"), Empty, Ongoing, PrepareAbort, CompleteAbort)

	if codes := addV3(t, c, 3, "to", 1000, 0, tp("a", 0)); codes["a-0"] != errProducerFenced {
		t.Fatalf("old producer's AddPartitionsToTxn: %v", codes)
	}
	if code := endTxn(c, 3, "to", 1000, 0, true); code != errProducerFenced {
		t.Fatalf("old producer's EndTxn: %d", code)
	}
	if code := c.VerifyPartition("to", 1000, 0, tp("a", 0)); code != errInvalidProducerEpoch {
		t.Fatalf("old producer's produce: %d", code)
	}
	mustInit(t, c, "to", 1000, 2)
	if got := c.metrics.timedOut.Get(); got != 1 {
		t.Fatalf("timed out counter %d", got)
	}
	wantState(t, c, "idle", "Empty", 1001, 0)
}

// TestTimeoutLoopAbortsWithoutBeingAsked: the background loop runs every
// AbortTimedOutTransactionsIntervalMs.
func TestTimeoutLoopAbortsWithoutBeingAsked(t *testing.T) {
	h := openTestHost(t, t.TempDir(), 1000)
	clk := &clock{}
	clk.ms.Store(t0)
	cfg := testConfig()
	cfg.AbortTimedOutTransactionsIntervalMs = 2
	c := newTestCoordinator(t, h, cfg, clk)
	if code := c.Ensure(); code != 0 {
		t.Fatal(code)
	}
	mustInit(t, c, "loop", 1000, 0)
	mustAdd(t, c, "loop", 1000, 0, tp("b", 0))
	clk.advance(10001)
	waitState(t, c, "loop", "CompleteAbort")
	wantState(t, c, "loop", "CompleteAbort", 1000, 1)
}

// TestTransactionalIDExpiration: an id with no transaction running whose last change is
// transactional.id.expiration.ms old gets a tombstone and is forgotten (also across a
// restart); an id in a transaction, or used recently, stays. A later InitProducerId starts it
// afresh.
func TestTransactionalIDExpiration(t *testing.T) {
	dir := t.TempDir()
	h := openTestHost(t, dir, 1000)
	clk := &clock{}
	clk.ms.Store(t0)
	cfg := testConfig()
	cfg.TransactionalIDExpirationMs = 1000
	c := newTestCoordinator(t, h, cfg, clk)
	if code := c.Ensure(); code != 0 {
		t.Fatal(code)
	}
	mustInit(t, c, "idle", 1000, 0)
	mustInit(t, c, "busy", 1001, 0)
	mustAdd(t, c, "busy", 1001, 0, tp("a", 0))
	clk.advance(600)
	mustInit(t, c, "recent", 1002, 0)
	clk.advance(399)
	if n := c.RemoveExpiredTransactionalIDs(); n != 0 {
		t.Fatalf("removed %d early", n)
	}
	clk.advance(1)
	if n := c.RemoveExpiredTransactionalIDs(); n != 1 {
		t.Fatalf("removed %d, want 1", n)
	}
	if d := describe(t, c, "idle"); d.ErrorCode != errTransactionalIDNotFound {
		t.Fatalf("idle: %+v", d)
	}
	wantState(t, c, "busy", "Ongoing", 1001, 0)
	wantState(t, c, "recent", "Empty", 1002, 0)
	recs := recordsOf(t, h, "idle")
	if len(recs) != 2 || recs[1].value != nil || recs[1].rawValue != nil || recs[1].partition != partitionFor("idle", 3) {
		t.Fatalf("idle records: %+v", recs)
	}
	if got := c.metrics.expired.Get(); got != 1 {
		t.Fatalf("expired counter %d", got)
	}
	list := c.ListTransactions(kmsg.NewPtrListTransactionsRequest())
	if len(list.TransactionStates) != 2 {
		t.Fatalf("list: %+v", list.TransactionStates)
	}

	// A restart does not bring it back.
	c.Close()
	h.close()
	h2 := openTestHost(t, dir, 2000)
	c2 := newTestCoordinator(t, h2, cfg, clk)
	if d := describe(t, c2, "idle"); d.ErrorCode != errTransactionalIDNotFound {
		t.Fatalf("idle after restart: %+v", d)
	}
	wantState(t, c2, "recent", "Empty", 1002, 0)
	mustInit(t, c2, "idle", 2000, 0)
}
