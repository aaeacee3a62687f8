package bench

import (
	"context"
	"testing"
	"time"

	"github.com/spate-broker/spate/bench/spatetest"
)

func testWorkload(t *testing.T, set map[string]string) Workload {
	t.Helper()
	w := DefaultWorkload()
	w.Name = "test"
	w.Records = 3000
	w.Partitions = 3
	w.RecordSize = FixedSize(200)
	w.ConsumeTimeout = Duration(10 * time.Second)
	for k, v := range set {
		if err := w.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func runOK(t *testing.T, addr string, w Workload) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	res, err := Run(ctx, Options{Brokers: []string{addr}, Workload: w, SampleEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	v := res.Verify
	t.Logf("%s: produce %.0f rec/s, consume %.0f rec/s, verify %+v, warnings %v, errors %v",
		w.Name, res.Produce.RecordsPerSec, res.Consume.RecordsPerSec, v, res.Warnings, res.Errors)
	if !v.Checked || !v.OK() || v.Unacked != 0 || v.Foreign != 0 {
		t.Errorf("verification failed: %+v", v)
	}
	want := w.Records
	if v.Sent != want || v.Acked != want || v.Unique != want || v.Consumed != want {
		t.Errorf("sent %d, acked %d, unique %d, consumed %d; want %d each", v.Sent, v.Acked, v.Unique, v.Consumed, want)
	}
	if len(res.Errors) > 0 {
		t.Errorf("errors: %v", res.Errors)
	}
	if res.Produce.Latency == nil || res.Produce.Latency.Count != want {
		t.Errorf("produce latency: %+v, want %d values", res.Produce.Latency, want)
	}
	if len(res.Series) == 0 {
		t.Error("no samples")
	}
	var produced, consumed int64
	for _, s := range res.Series {
		produced += s.ProducedRecords
		consumed += s.ConsumedRecords
	}
	if produced != want || consumed != want {
		t.Errorf("series adds up to %d produced, %d consumed; want %d", produced, consumed, want)
	}
	return res
}

// TestRunConcurrentFixedRate: at a fixed rate with concurrent consumers every record arrives
// exactly once, in order, intact, and end-to-end latency is measured for each.
func TestRunConcurrentFixedRate(t *testing.T) {
	addr := spatetest.Start(t)
	w := testWorkload(t, map[string]string{"producers": "2", "consumers": "2", "rate": "3000",
		"keys": "distinct(50)", "record_size": "uniform(40, 2000)", "linger": "0s"})
	res := runOK(t, addr, w)
	if e := res.Consume.EndToEnd; e == nil || e.Count != w.Records {
		t.Errorf("end-to-end latency: %+v, want %d values", e, w.Records)
	}
	// 3000 records at 3000/s: about one second of producing, not much less.
	if res.Produce.ElapsedS < 0.9 {
		t.Errorf("produced in %.2fs; the schedule says about 1s", res.Produce.ElapsedS)
	}
}

// TestRunProduceThenConsume: the S1 shape — produce at full speed, then read everything back.
func TestRunProduceThenConsume(t *testing.T) {
	addr := spatetest.Start(t)
	w := testWorkload(t, map[string]string{"consume": "after", "rate": "0", "compression": "lz4",
		"payload": "text", "topics": "2"})
	res := runOK(t, addr, w)
	if res.Consume.EndToEnd != nil {
		t.Error("end-to-end latency measured although consumers ran after producing")
	}
	if len(res.Topics) != 2 || res.Topics[0].Partitions != 3 || !res.Topics[0].Created {
		t.Errorf("topics: %+v", res.Topics)
	}
}

// TestRunAcks1Duration: acks=1 (not idempotent), bounded by duration instead of a count.
func TestRunAcks1Duration(t *testing.T) {
	addr := spatetest.Start(t)
	w := testWorkload(t, map[string]string{"acks": "1", "records": "0", "duration": "1s", "rate": "2000"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, Options{Brokers: []string{addr}, Workload: w})
	if err != nil {
		t.Fatal(err)
	}
	v := res.Verify
	if !v.OK() || v.Acked < 1800 || v.Acked > 2000 || v.Unique != v.Acked {
		t.Errorf("verify %+v: want about 2000 records, all read once", v)
	}
}
