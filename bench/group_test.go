package bench

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// startKfake starts franz-go's in-memory Kafka (kfake), which has consumer groups; Spate does
// not have them yet.
func startKfake(t *testing.T) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// TestRunGroupConsumers: the S4 shape, small — several producers, keyed records, consumers in
// one group sharing the partitions — reads every record once and in order per key, through
// the group's joins.
func TestRunGroupConsumers(t *testing.T) {
	addr := startKfake(t)
	w := testWorkload(t, map[string]string{"partitions": "12", "producers": "3", "consumers": "3",
		"consumer_mode": "group", "keys": "distinct(50)", "rate": "0"})
	res := runOK(t, addr, w)
	if res.Consume.EndToEnd == nil {
		t.Error("no end-to-end latency")
	}
	for _, warn := range res.Warnings {
		t.Errorf("warning: %s", warn)
	}
}

// TestRunGroupAfter: group consumers that join after everything was produced read it all from
// the start of the fresh topic.
func TestRunGroupAfter(t *testing.T) {
	addr := startKfake(t)
	w := testWorkload(t, map[string]string{"consumer_mode": "group", "consume": "after", "consumers": "2", "rate": "0"})
	runOK(t, addr, w)
}

// TestRunInterrupted: cancelling the context stops a run early with a partial result, and no
// loss is claimed for records the consumers had no time to read.
func TestRunInterrupted(t *testing.T) {
	addr := startKfake(t)
	w := testWorkload(t, map[string]string{"records": "0", "duration": "30s", "rate": "500"})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(time.Second, cancel)
	start := time.Now()
	res, err := Run(ctx, Options{Brokers: []string{addr}, Workload: w})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("took %v to stop", d)
	}
	if !res.Interrupted || res.Verify.Lost != 0 || res.Verify.Acked == 0 || res.Verify.Acked > 1000 {
		t.Errorf("interrupted %v, verify %+v", res.Interrupted, res.Verify)
	}
}

// TestRunFewerRecordsThanProducers: producers left without a share of the records send none.
func TestRunFewerRecordsThanProducers(t *testing.T) {
	addr := startKfake(t)
	w := testWorkload(t, map[string]string{"records": "3", "producers": "5", "rate": "0"})
	runOK(t, addr, w)
}
