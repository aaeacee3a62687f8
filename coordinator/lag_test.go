package coordinator

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// lagHighWatermarks is a HighWatermarkFunc over a map the test edits.
type lagHighWatermarks struct {
	mu sync.Mutex
	hw map[string]int64 // "topic/partition" → high watermark
}

func (h *lagHighWatermarks) set(topic string, p int32, hw int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hw[fmt.Sprintf("%s/%d", topic, p)] = hw
}

func (h *lagHighWatermarks) get(topic string, p int32) (int64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.hw[fmt.Sprintf("%s/%d", topic, p)]
	return v, ok
}

// lagSeries returns the spate_consumer_lag lines of the set's Prometheus text, sorted as
// written.
func lagSeries(t *testing.T, set *metrics.Set) []string {
	t.Helper()
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	var out []string
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.HasPrefix(line, lagMetric) {
			out = append(out, line)
		}
	}
	return out
}

func lagCommit(t *testing.T, c *Coordinator, group, member string, gen int32, topic string, p int32, off int64) {
	t.Helper()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version, req.Group, req.MemberID, req.Generation = 8, group, member, gen
	req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: p, Offset: off, LeaderEpoch: -1}}}}
	if code := c.OffsetCommit(req).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("commit %s %s-%d@%d: error %d", group, topic, p, off, code)
	}
}

// TestConsumerLagMetric: spate_consumer_lag{group,topic,partition} is the high watermark minus
// the committed offset, for the commits of a classic group's member and of a simple
// (generation -1) group; it follows later commits and produces (a moving high watermark),
// drops the series of deleted offsets and groups and of partitions the broker no longer has,
// is not clamped, escapes label values, and survives a reload from __consumer_offsets.
func TestConsumerLagMetric(t *testing.T) {
	dir := t.TempDir()
	h := openTestHost(t, dir)
	h.topics["u"] = 2
	c := newTestCoordinator(t, h)
	if code := c.Ensure(); code != 0 {
		t.Fatalf("ensure: %d", code)
	}
	hw := &lagHighWatermarks{hw: map[string]int64{}}
	for p := int32(0); p < 4; p++ {
		hw.set("t", p, 100)
	}
	hw.set("u", 0, 7)
	hw.set("u", 1, 0)
	set := metrics.NewSet()
	c.ExposeLag(set, hw.get)
	if got := lagSeries(t, set); len(got) != 0 {
		t.Fatalf("lag series before any commit: %q", got)
	}

	// A classic group with one member (generation 1), committing as a member.
	r := joinWait(t, c, consumerJoin("workers", "", nil))
	if r.ErrorCode == 79 { // MEMBER_ID_REQUIRED (KIP-394): join again with the given id
		r = joinWait(t, c, consumerJoin("workers", r.MemberID, nil))
	}
	if r.ErrorCode != 0 {
		t.Fatalf("join: %+v", r)
	}
	sreq := kmsg.NewPtrSyncGroupRequest()
	sreq.Version, sreq.Group, sreq.MemberID, sreq.Generation = 3, "workers", r.MemberID, r.Generation
	sreq.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: r.MemberID, MemberAssignment: []byte{}}}
	done := make(chan *kmsg.SyncGroupResponse, 1)
	c.SyncGroup(sreq, func(s *kmsg.SyncGroupResponse) { done <- s })
	if s := <-done; s.ErrorCode != 0 {
		t.Fatalf("sync: %+v", s)
	}
	lagCommit(t, c, "workers", r.MemberID, r.Generation, "t", 0, 40)
	lagCommit(t, c, "workers", r.MemberID, r.Generation, "t", 3, 100)
	// A simple group, and a group id that needs escaping.
	lagCommit(t, c, "simple", "", -1, "u", 0, 2)
	odd := "we\"ird\\gr\noup\xff"
	lagCommit(t, c, odd, "", -1, "t", 1, 10)

	want := []string{
		`spate_consumer_lag{group="simple",topic="u",partition="0"} 5`,
		`spate_consumer_lag{group="we\"ird\\gr\noup` + "\uFFFD" + `",topic="t",partition="1"} 90`,
		`spate_consumer_lag{group="workers",topic="t",partition="0"} 60`,
		`spate_consumer_lag{group="workers",topic="t",partition="3"} 0`,
	}
	check := func(step string, want []string) {
		t.Helper()
		if got := lagSeries(t, set); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("%s: lag series\n%s\nwant\n%s", step, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	check("after the first commits", want)

	// A later commit and a produce.
	lagCommit(t, c, "workers", r.MemberID, r.Generation, "t", 0, 75)
	hw.set("t", 3, 130)
	want[2] = `spate_consumer_lag{group="workers",topic="t",partition="0"} 25`
	want[3] = `spate_consumer_lag{group="workers",topic="t",partition="3"} 30`
	check("after a commit and a produce", want)

	// The log was truncated below the commit (or the client committed past the end): the lag
	// is negative, not hidden.
	hw.set("u", 0, 1)
	want[0] = `spate_consumer_lag{group="simple",topic="u",partition="0"} -1`
	check("commit past the end", want)

	// The broker no longer has the partition: no series.
	delete(hw.hw, "t/3")
	check("partition gone", want[:3])
	hw.set("t", 3, 130)

	// OffsetDelete of the simple group's only offset, then DeleteGroups of the odd one.
	od := kmsg.NewPtrOffsetDeleteRequest()
	od.Group = "simple"
	od.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "u", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
	if resp := c.OffsetDelete(od); resp.ErrorCode != 0 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("offset delete: %+v", resp)
	}
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{odd}
	if code := c.DeleteGroups(del).Groups[0].ErrorCode; code != 0 {
		t.Fatalf("delete group: %d", code)
	}
	want = want[2:]
	check("after OffsetDelete and DeleteGroups", want)

	// ConsumerLag gives the same numbers.
	got := fmt.Sprint(c.ConsumerLag(hw.get))
	if got != "[{workers t 0 75 100 25} {workers t 3 100 130 30}]" {
		t.Fatalf("ConsumerLag: %s", got)
	}

	// After a restart, the lag comes from the reloaded offsets.
	c.Close()
	h.close()
	h = openTestHost(t, dir)
	c = newTestCoordinator(t, h)
	set = metrics.NewSet()
	c.ExposeLag(set, hw.get)
	check("after reload", want)
}
