package broker

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/spate-broker/spate/logstore"
)

// producersJSON is the partition's producer state as a snapshot would write it.
func producersJSON(t *testing.T, p *partition) string {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	raw, err := json.Marshal(p.producers)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// reloadProducerState drops the partition's producer state and rebuilds it from snapshot and
// log, as a restart or a replica becoming leader does.
func reloadProducerState(t *testing.T, p *partition) {
	t.Helper()
	p.mu.Lock()
	p.producers = map[int64]*producerState{}
	p.txns = map[int64]int64{}
	p.firstUnstable.Store(-1)
	p.mu.Unlock()
	if err := p.loadProducerState(); err != nil {
		t.Fatal(err)
	}
}

// TestProducerSnapshotRestoredThenTailReplayed: producer state rebuilt from a snapshot plus
// the batches appended after it equals the state before — an open transaction (and the last
// stable offset it holds) and idempotent producers' sequences included.
func TestProducerSnapshotRestoredThenTailReplayed(t *testing.T) {
	tb := startBroker(t, "", nil)
	adm := kadm.NewClient(newClient(t, tb.addr))
	const topic = "snap-restore"
	admCreate(t, adm, topic, 1, nil)
	cl := newClient(t, tb.addr)
	pidA, _ := rawTxn(t, tb.addr, "tx-snap-a", topic, 0, 60000, "a-0", "a-1")
	p := tb.b.topics.partition(topic, 0)
	if err := p.saveProducerSnapshot(); err != nil {
		t.Fatal(err)
	}
	if got := p.snapshotLEO.Load(); got != 2 {
		t.Fatalf("snapshot at %d, want 2", got)
	}
	// After the snapshot: an idempotent producer's batch and a second open transaction.
	pidI, epochI := initProducerID(t, cl)
	if code, base := rawProduce(t, cl, topic, pidI, epochI, 0, 3); code != 0 || base != 2 {
		t.Fatalf("idempotent produce: code %d base %d", code, base)
	}
	pidB, _ := rawTxn(t, tb.addr, "tx-snap-b", topic, 0, 60000, "b-0")
	before := producersJSON(t, p)
	reloadProducerState(t, p)
	if after := producersJSON(t, p); after != before {
		t.Fatalf("state after reload:\n%s\nbefore:\n%s", after, before)
	}
	p.mu.Lock()
	firstA, firstB := p.txns[pidA], p.txns[pidB]
	p.mu.Unlock()
	if f := p.firstUnstable.Load(); f != 0 || firstA != 0 || firstB != 5 {
		t.Fatalf("open transactions: first unstable %d, A at %d, B at %d; want 0, 0, 5", f, firstA, firstB)
	}
	// The retried idempotent batch is still recognized as a duplicate after the reload.
	if code, base := rawProduce(t, cl, topic, pidI, epochI, 0, 3); code != 0 || base != 2 {
		t.Fatalf("retried idempotent batch: code %d base %d, want its original offset 2", code, base)
	}
	if end := endOffset(t, cl, topic); end != 6 {
		t.Fatalf("log end %d, want 6 (the retry not appended)", end)
	}
}

// TestProducerSnapshotOfATruncatedLogIsIgnored: a snapshot taken while the replica led, of a
// tail that a new leader's log replaced (truncated, then grown past the snapshot's offset
// with the new leader's batches), is not loaded: the open transaction it recorded does not
// come back to hold the last stable offset.
func TestProducerSnapshotOfATruncatedLogIsIgnored(t *testing.T) {
	for _, tc := range []struct {
		name string
		// batches the new leader's log has from offset 0, as [base, last] ranges
		batches [][2]int64
	}{
		{"a batch ends at the snapshot's offset", [][2]int64{{0, 1}, {2, 4}}},
		{"no batch ends there", [][2]int64{{0, 4}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := startBroker(t, "", nil)
			adm := kadm.NewClient(newClient(t, tb.addr))
			const topic = "snap-truncated"
			admCreate(t, adm, topic, 1, nil)
			pid, _ := rawTxn(t, tb.addr, "tx-snap-t", topic, 0, 60000, "t-0", "t-1")
			p := tb.b.topics.partition(topic, 0)
			if err := p.saveProducerSnapshot(); err != nil {
				t.Fatal(err)
			}
			// The replica follows a new leader (epoch 1) whose log diverged at offset 0.
			if err := p.log.TruncateTo(0); err != nil {
				t.Fatal(err)
			}
			for _, r := range tc.batches {
				recs := make([]logstore.Record, r[1]-r[0]+1)
				for i := range recs {
					recs[i] = logstore.Record{Value: []byte("new leader")}
				}
				batch := logstore.AppendBatch(nil, logstore.BatchSpec{BaseOffset: r[0], PartitionLeaderEpoch: 1,
					BaseTimestamp: time.Now().UnixMilli(), ProducerID: -1, BaseSequence: -1, Records: recs})
				var info logstore.AppendInfo
				if err := p.log.AppendAsFollower(batch, &info); err != nil {
					t.Fatal(err)
				}
			}
			reloadProducerState(t, p)
			p.mu.Lock()
			_, open := p.txns[pid]
			_, known := p.producers[pid]
			p.mu.Unlock()
			if f := p.firstUnstable.Load(); f != -1 || open || known {
				t.Fatalf("first unstable %d, transaction open %v, producer known %v: the stale snapshot was loaded", f, open, known)
			}
		})
	}
}
