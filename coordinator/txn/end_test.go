package txn

import (
	"testing"
	"time"
)

// TestEndTxnCommitAndAbortWriteMarkers: EndTxn records Prepare*, writes one marker per
// partition of the transaction (exactly those, with its producer id and epoch, commit or
// abort), records Complete* with no partitions, and answers 0; a retry with the same result
// is 0 without new markers, the other result INVALID_TXN_STATE.
func TestEndTxnCommitAndAbortWriteMarkers(t *testing.T) {
	c, h, clk := setup(t)
	mustInit(t, c, "c", 1000, 0)
	mustInit(t, c, "c", 1000, 1)
	mustAdd(t, c, "c", 1000, 1, tp("b", 0), tp("a", 1), tp("a", 0))
	clk.advance(3)
	if code := endTxn(c, 3, "c", 1000, 1, true); code != 0 {
		t.Fatalf("commit: %d", code)
	}
	calls := h.markerCalls()
	if len(calls) != 1 {
		t.Fatalf("%d marker calls", len(calls))
	}
	wantMarkers(t, calls[0], 1000, 1, true, tp("a", 0), tp("a", 1), tp("b", 0))
	d := wantState(t, c, "c", "CompleteCommit", 1000, 1)
	if len(d.Topics) != 0 || d.StartTimestamp != t0 {
		t.Fatalf("describe: %+v", d)
	}
	recs := recordsOf(t, h, "c")
	wantStates(t, recs, Empty, Empty, Ongoing, PrepareCommit, CompleteCommit)
	if p := recs[3].value; len(p.Topics) != 2 || len(p.Topics[0].Partitions) != 2 || p.LastUpdateTimestamp != t0+3 || p.StartTimestamp != t0 {
		t.Fatalf("PrepareCommit record: %+v", p)
	}
	if v := recs[4].value; v.Topics == nil || len(v.Topics) != 0 || v.StartTimestamp != t0 {
		t.Fatalf("CompleteCommit record: %+v (topics must be empty, not null)", v)
	}

	if code := endTxn(c, 3, "c", 1000, 1, true); code != 0 {
		t.Fatalf("retried commit: %d", code)
	}
	if code := endTxn(c, 3, "c", 1000, 1, false); code != errInvalidTxnState {
		t.Fatalf("abort after commit: %d", code)
	}
	if n := len(h.markerCalls()); n != 1 {
		t.Fatalf("%d marker calls after retries", n)
	}

	// The next transaction, aborted.
	clk.advance(10)
	mustAdd(t, c, "c", 1000, 1, tp("b", 0))
	if d := wantState(t, c, "c", "Ongoing", 1000, 1); d.StartTimestamp != t0+13 || len(d.Topics) != 1 {
		t.Fatalf("second transaction: %+v", d)
	}
	if code := endTxn(c, 3, "c", 1000, 1, false); code != 0 {
		t.Fatalf("abort: %d", code)
	}
	calls = h.markerCalls()
	if len(calls) != 2 {
		t.Fatalf("%d marker calls", len(calls))
	}
	wantMarkers(t, calls[1], 1000, 1, false, tp("b", 0))
	wantState(t, c, "c", "CompleteAbort", 1000, 1)
	if code := endTxn(c, 3, "c", 1000, 1, false); code != 0 {
		t.Fatalf("retried abort: %d", code)
	}
	if code := endTxn(c, 3, "c", 1000, 1, true); code != errInvalidTxnState {
		t.Fatalf("commit after abort: %d", code)
	}
	if c.metrics.committed.Get() != 1 || c.metrics.aborted.Get() != 1 || c.metrics.started.Get() != 2 {
		t.Fatalf("counters: committed %d aborted %d started %d", c.metrics.committed.Get(), c.metrics.aborted.Get(), c.metrics.started.Get())
	}
}

// TestEndTxnErrors: EndTxn with no transaction (Empty) is INVALID_TXN_STATE either way;
// unknown id or producer id INVALID_PRODUCER_ID_MAPPING; another epoch PRODUCER_FENCED from
// v2, INVALID_PRODUCER_EPOCH before; empty id INVALID_REQUEST.
func TestEndTxnErrors(t *testing.T) {
	c, h, _ := setup(t)
	mustInit(t, c, "n", 1000, 0)
	for _, tc := range []struct {
		version int16
		id      string
		pid     int64
		epoch   int16
		commit  bool
		code    int16
	}{
		{3, "n", 1000, 0, true, errInvalidTxnState},
		{3, "n", 1000, 0, false, errInvalidTxnState},
		{3, "nobody", 1000, 0, true, errInvalidProducerIDMapping},
		{3, "n", 1001, 0, true, errInvalidProducerIDMapping},
		{2, "n", 1000, 1, true, errProducerFenced},
		{1, "n", 1000, 1, true, errInvalidProducerEpoch},
		{3, "", 1000, 0, true, errInvalidRequest},
	} {
		if code := endTxn(c, tc.version, tc.id, tc.pid, tc.epoch, tc.commit); code != tc.code {
			t.Fatalf("%+v: %d", tc, code)
		}
	}
	if n := len(h.markerCalls()); n != 0 {
		t.Fatalf("%d marker calls", n)
	}
}

// TestConcurrentTransactionsWhileMarkersAreWritten: while a transaction's markers are being
// written (Prepare* is in the log), requests that would change it get CONCURRENT_TRANSACTIONS
// (the other EndTxn result INVALID_TXN_STATE); EndTxn answers once the markers are written.
func TestConcurrentTransactionsWhileMarkersAreWritten(t *testing.T) {
	c, h, _ := setup(t)
	mustInit(t, c, "cc", 1000, 0)
	mustAdd(t, c, "cc", 1000, 0, tp("a", 0))
	block, entered := make(chan struct{}), make(chan struct{}, 1)
	h.mu.Lock()
	h.block, h.entered = block, entered
	h.mu.Unlock()
	done := make(chan int16, 1)
	go func() { done <- endTxn(c, 3, "cc", 1000, 0, true) }()
	<-entered
	released := false
	defer func() {
		if !released {
			close(block)
		}
	}()

	wantState(t, c, "cc", "PrepareCommit", 1000, 0)
	if codes := addV3(t, c, 3, "cc", 1000, 0, tp("b", 0)); codes["b-0"] != errConcurrentTransactions {
		t.Fatalf("AddPartitionsToTxn: %v", codes)
	}
	if r := initPID(t, c, 4, "cc", 10000, -1, -1); r.ErrorCode != errConcurrentTransactions {
		t.Fatalf("InitProducerId: %+v", r)
	}
	if code := endTxn(c, 3, "cc", 1000, 0, true); code != errConcurrentTransactions {
		t.Fatalf("EndTxn commit again: %d", code)
	}
	if code := endTxn(c, 3, "cc", 1000, 0, false); code != errInvalidTxnState {
		t.Fatalf("EndTxn abort: %d", code)
	}
	if code := c.VerifyPartition("cc", 1000, 0, tp("a", 0)); code != errConcurrentTransactions {
		t.Fatalf("VerifyPartition: %d", code)
	}
	select {
	case code := <-done:
		t.Fatalf("EndTxn answered %d before its markers were written", code)
	default:
	}
	close(block)
	released = true
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("EndTxn: %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("EndTxn not answered")
	}
	wantState(t, c, "cc", "CompleteCommit", 1000, 0)
	mustInit(t, c, "cc", 1000, 1)
}

// TestMarkersRetriedAfterTransientError: a partition whose marker write fails with a
// retriable code is retried (alone) until it succeeds; UNKNOWN_TOPIC_OR_PARTITION counts as
// done.
func TestMarkersRetriedAfterTransientError(t *testing.T) {
	c, h, _ := setup(t)
	h.mu.Lock()
	h.codes = func(n int, parts []TopicPartition) []int16 {
		codes := make([]int16, len(parts))
		for i, p := range parts {
			switch {
			case n < 2 && p == tp("a", 0):
				codes[i] = errNotLeaderOrFollower
			case n == 0 && p == tp("b", 0):
				codes[i] = errUnknownTopicOrPartition
			}
		}
		return codes
	}
	h.mu.Unlock()
	mustInit(t, c, "r", 1000, 0)
	mustAdd(t, c, "r", 1000, 0, tp("a", 0), tp("a", 1), tp("b", 0))
	if code := endTxn(c, 3, "r", 1000, 0, false); code != 0 {
		t.Fatalf("abort: %d", code)
	}
	calls := h.markerCalls()
	if len(calls) != 3 {
		t.Fatalf("%d marker calls, want 3", len(calls))
	}
	wantMarkers(t, calls[0], 1000, 0, false, tp("a", 0), tp("a", 1), tp("b", 0))
	wantMarkers(t, calls[1], 1000, 0, false, tp("a", 0))
	wantMarkers(t, calls[2], 1000, 0, false, tp("a", 0))
	wantState(t, c, "r", "CompleteAbort", 1000, 0)
	if got := c.metrics.markerRetries.Get(); got != 2 {
		t.Fatalf("marker retries %d", got)
	}
}
