package coordinator

// Consumer lag: how far each group's committed offset is behind its partition's end.
//
//	spate_consumer_lag{group="g",topic="t",partition="0"}   high watermark − committed offset
//
// One series per committed offset of every group (a group used only for its offsets too),
// computed when the metric set is written, so a commit, a produce, an expired or deleted
// offset and a deleted group show at the next scrape without any bookkeeping on the commit
// path. The coordinator does not know the partitions' logs: the broker hands it a
// HighWatermarkFunc. A partition the broker does not know (its topic was deleted, or it is
// led elsewhere) has no series. The value is not clamped: a negative lag means the group
// committed an offset past the end of the log (a client's bug, or the log was truncated).

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/VictoriaMetrics/metrics"
)

// HighWatermarkFunc returns a partition's high watermark, with ok false when this node has no
// such partition. It must not call back into the coordinator.
type HighWatermarkFunc func(topic string, partition int32) (hw int64, ok bool)

// Lag is the lag of one group on one partition.
type Lag struct {
	Group     string
	Topic     string
	Partition int32
	Committed int64 // the committed offset
	HighWater int64 // the partition's high watermark
	Lag       int64 // HighWater - Committed
}

// ConsumerLag returns the lag of every committed offset, sorted by group, topic and partition.
// Each group's offsets are copied under its lock; hw is called with no lock held.
func (c *Coordinator) ConsumerLag(hw HighWatermarkFunc) []Lag {
	var out []Lag
	for _, g := range c.snapshot() {
		g.mu.Lock()
		if g.state != Dead {
			for tp, o := range g.offsets {
				out = append(out, Lag{Group: g.id, Topic: tp.topic, Partition: tp.partition, Committed: o.offset})
			}
		}
		g.unlock()
	}
	kept := out[:0]
	for _, l := range out {
		h, ok := hw(l.Topic, l.Partition)
		if !ok {
			continue
		}
		l.HighWater, l.Lag = h, h-l.Committed
		kept = append(kept, l)
	}
	out = kept
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		return a.Partition < b.Partition
	})
	return out
}

// lagMetric is the name of the consumer lag series.
const lagMetric = "spate_consumer_lag"

// ExposeLag adds spate_consumer_lag{group,topic,partition} to set, computed with hw at every
// write of the set. Call it once per set.
func (c *Coordinator) ExposeLag(set *metrics.Set, hw HighWatermarkFunc) {
	set.RegisterMetricsWriter(func(w io.Writer) { c.writeLag(w, hw) })
}

// writeLag writes the lag series in Prometheus text format.
func (c *Coordinator) writeLag(w io.Writer, hw HighWatermarkFunc) {
	lags := c.ConsumerLag(hw)
	if len(lags) == 0 {
		return
	}
	var b bytes.Buffer
	metrics.WriteMetadataIfNeeded(&b, lagMetric, "gauge")
	for _, l := range lags {
		fmt.Fprintf(&b, "%s{group=\"%s\",topic=\"%s\",partition=\"%d\"} %d\n", lagMetric, labelValue(l.Group), labelValue(l.Topic), l.Partition, l.Lag)
	}
	w.Write(b.Bytes())
}

// labelEscaper escapes a Prometheus label value: backslash, double quote and line feed.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// labelValue makes any group id a valid label value (UTF-8, escaped). Go's %q would not do:
// its \x and \u escapes are not Prometheus's.
func labelValue(s string) string {
	return labelEscaper.Replace(strings.ToValidUTF8(s, "\uFFFD"))
}
