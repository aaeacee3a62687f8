package coordinator

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/logstore"
)

// appendMarker writes a commit/abort marker for pid to partition p of the test host's offsets
// topic, as the broker does, and tells the coordinator.
func appendMarker(t *testing.T, h *testHost, c *Coordinator, p int32, pid int64, commit bool) {
	t.Helper()
	var rec [10]byte
	key, val := logstore.AppendControlRecord(rec[:0], commit, 0)
	batch := logstore.AppendBatch(nil, logstore.BatchSpec{
		Attributes: logstore.AttrControl | logstore.AttrTransactional, BaseTimestamp: time.Now().UnixMilli(),
		ProducerID: pid, ProducerEpoch: 0, BaseSequence: -1, Records: []logstore.Record{{Key: key, Value: val}},
	})
	var info logstore.AppendInfo
	if err := h.logs[p].AppendAsLeader(batch, 0, true, &info); err != nil {
		t.Fatal(err)
	}
	if c != nil {
		c.CompleteTxn(p, pid, commit)
	}
}

func txnCommit(t *testing.T, c *Coordinator, group string, pid int64, part int32, off int64) {
	t.Helper()
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.Version, req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = 3, "tx", group, pid, 0
	req.Generation = -1
	md := "txn"
	req.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: part, Offset: off, LeaderEpoch: -1, Metadata: &md}}}}
	if code := c.TxnOffsetCommit(req).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("txn commit %s p%d: %d", group, part, code)
	}
}

// fetchOne returns a group's committed offset of t/part and the partition's error code.
func fetchOne(t *testing.T, c *Coordinator, group string, part int32, stable bool) (int64, int16) {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version, req.Group, req.RequireStable = 7, group, stable
	req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{part}}}
	p := c.OffsetFetch(req).Topics[0].Partitions[0]
	return p.Offset, p.ErrorCode
}

// TestTxnOffsetsPendingUntilMarker: a transactional commit is invisible until its commit
// marker (RequireStable fetches get UNSTABLE_OFFSET_COMMIT meanwhile); an aborted one never
// shows; across a restart, pending commits stay pending and the log's markers decide them.
func TestTxnOffsetsPendingUntilMarker(t *testing.T) {
	dir := t.TempDir()
	h := openTestHost(t, dir)
	c := newTestCoordinator(t, h)
	if code := c.Ensure(); code != 0 {
		t.Fatal(code)
	}
	const g = "txn-group"
	p := c.PartitionFor(g)
	txnCommit(t, c, g, 100, 0, 5)
	if off, code := fetchOne(t, c, g, 0, false); off != -1 || code != 0 {
		t.Fatalf("before marker: offset %d code %d, want -1 0", off, code)
	}
	if _, code := fetchOne(t, c, g, 0, true); code != errUnstableOffsetCommit {
		t.Fatalf("require stable before marker: code %d, want UNSTABLE_OFFSET_COMMIT", code)
	}
	appendMarker(t, h, c, p, 100, true)
	if off, code := fetchOne(t, c, g, 0, true); off != 5 || code != 0 {
		t.Fatalf("after commit: offset %d code %d, want 5 0", off, code)
	}
	txnCommit(t, c, g, 100, 0, 9)
	appendMarker(t, h, c, p, 100, false)
	if off, _ := fetchOne(t, c, g, 0, true); off != 5 {
		t.Fatalf("after abort: offset %d, want 5", off)
	}
	// A marker on another partition of the offsets topic does not touch this group.
	txnCommit(t, c, g, 200, 1, 7)
	appendMarker(t, h, c, (p+1)%3, 200, true)
	if _, code := fetchOne(t, c, g, 1, true); code != errUnstableOffsetCommit {
		t.Fatalf("marker elsewhere: code %d, want UNSTABLE_OFFSET_COMMIT", code)
	}
	// Producer 300 commits offsets and its transaction is still open at the restart;
	// producer 200's is aborted after it.
	txnCommit(t, c, g, 300, 2, 30)
	appendMarker(t, h, nil, p, 200, false)
	c.Close()
	h.close()

	h = openTestHost(t, dir)
	c = newTestCoordinator(t, h)
	if off, code := fetchOne(t, c, g, 0, true); off != 5 || code != 0 {
		t.Fatalf("reloaded p0: %d %d, want 5 0", off, code)
	}
	if off, code := fetchOne(t, c, g, 1, true); off != -1 || code != 0 {
		t.Fatalf("reloaded p1 (aborted): %d %d, want -1 0", off, code)
	}
	if _, code := fetchOne(t, c, g, 2, true); code != errUnstableOffsetCommit {
		t.Fatalf("reloaded p2 (open): code %d, want UNSTABLE_OFFSET_COMMIT", code)
	}
	appendMarker(t, h, c, p, 300, true)
	if off, code := fetchOne(t, c, g, 2, true); off != 30 || code != 0 {
		t.Fatalf("p2 after commit: %d %d, want 30 0", off, code)
	}
}
