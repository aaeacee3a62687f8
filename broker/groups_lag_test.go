package broker

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// TestConsumerLagMetric: the broker's metric set exposes spate_consumer_lag{group,topic,
// partition} = high watermark − committed offset, following commits and produces.
func TestConsumerLagMetric(t *testing.T) {
	tb := grpBroker(t, "", nil)
	const topic, group, partitions = "lagged", "laggards", 3
	adm := grpCreateTopic(t, tb.addr, topic, partitions)
	grpProduce(t, tb.addr, topic, partitions, 0, 30) // 10 records per partition
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	commit := func(p int32, at int64) {
		t.Helper()
		if _, err := adm.CommitOffsets(ctx, group, kadm.Offsets{topic: {p: {Topic: topic, Partition: p, At: at, LeaderEpoch: -1}}}); err != nil {
			t.Fatal(err)
		}
	}
	lag := func() string {
		var buf bytes.Buffer
		tb.b.Metrics().WritePrometheus(&buf)
		var out []string
		for _, l := range strings.Split(buf.String(), "\n") {
			if strings.HasPrefix(l, "spate_consumer_lag{") {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n")
	}
	if got := lag(); got != "" {
		t.Fatalf("lag before any commit:\n%s", got)
	}
	commit(0, 4)
	commit(2, 10)
	want := `spate_consumer_lag{group="laggards",topic="lagged",partition="0"} 6` + "\n" +
		`spate_consumer_lag{group="laggards",topic="lagged",partition="2"} 0`
	if got := lag(); got != want {
		t.Fatalf("lag after commits:\n%s\nwant\n%s", got, want)
	}
	grpProduce(t, tb.addr, topic, partitions, 30, 6) // two more per partition
	commit(0, 9)
	want = `spate_consumer_lag{group="laggards",topic="lagged",partition="0"} 3` + "\n" +
		`spate_consumer_lag{group="laggards",topic="lagged",partition="2"} 2`
	if got := lag(); got != want {
		t.Fatalf("lag after a produce and a commit:\n%s\nwant\n%s", got, want)
	}
}
