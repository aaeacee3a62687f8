package broker

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFetchFromClosestReplica (KIP-392): three nodes in racks r1..r3 with the rack-aware
// replica selector, a partition led by node 1 with replicas on all three. The leader names
// the in-sync follower in the consumer's rack as preferred read replica (no records, at once);
// that follower serves the records up to its high watermark; a consumer in the leader's rack,
// one naming no rack, a read_committed fetch and Fetch v10 are served by the leader; a
// follower refuses read_committed and v10 fetches with NOT_LEADER_OR_FOLLOWER. A franz-go
// consumer with client.rack r3 reads every record, and node 3 is the one that sent them.
// Without the selector a leader names no preferred replica.
func TestFetchFromClosestReplica(t *testing.T) {
	tc := startTestCluster(t, 3, func(i int, c *Config) {
		c.Rack = fmt.Sprintf("r%d", i+1)
		if i < 2 {
			c.ReplicaSelector = ReplicaSelectorRack // node 3 keeps the default
		}
	})
	const topic, n = "closest", 100
	if code, msg := createTopicOn(t, tc.nodes[0].addr, topic, -1, -1, [][]int32{{1, 2, 3}}); code != 0 {
		t.Fatalf("create: %d %s", code, msg)
	}
	for i := range tc.nodes {
		tc.waitISR(i, topic, []int32{1})
	}
	produceConsume(t, tc.nodes[0].addr, topic, n)
	tc.checkReplicasIdentical(topic, 1)
	// Every follower has fetched past the last record (its next fetch reported it).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ls := tc.partitionOn(0, topic, 0).repl.leader.Load()
		f2, _ := ls.Follower(2)
		f3, _ := ls.Follower(3)
		if f2.LogEndOffset == n && f3.LogEndOffset == n && tc.partitionOn(1, topic, 0).highWatermark() == n && tc.partitionOn(2, topic, 0).highWatermark() == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("followers did not catch up: %+v %+v", f2, f3)
		}
	}

	fetch := func(node int, version int16, rack string, isolation int8) kmsg.FetchResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(version)
		req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes, req.IsolationLevel = -1, 2000, 1, 1<<20, isolation
		req.Rack = rack
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		rt.TopicID = tc.nodes[node].b.topics.get(topic).meta.ID
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 0, 1<<20, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := admRaw[*kmsg.FetchResponse](t, tc.nodes[node].addr, req)
		if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("fetch from node %d: %+v", node+1, resp)
		}
		return resp.Topics[0].Partitions[0]
	}
	records := func(p kmsg.FetchResponseTopicPartition) int64 {
		var last int64 = -1
		for _, b := range batchesIn(t, p.RecordBatches) {
			last = b[1]
		}
		return last + 1
	}
	began := time.Now()
	p := fetch(0, 11, "r2", 0)
	if p.ErrorCode != 0 || p.PreferredReadReplica != 2 || len(p.RecordBatches) != 0 || p.HighWatermark != n || time.Since(began) > time.Second {
		t.Fatalf("leader, consumer in r2: code %d preferred %d, %d bytes, hw %d after %v; want replica 2, no records, at once",
			p.ErrorCode, p.PreferredReadReplica, len(p.RecordBatches), p.HighWatermark, time.Since(began))
	}
	if p := fetch(0, 13, "r3", 0); p.PreferredReadReplica != 3 {
		t.Fatalf("leader v13, consumer in r3: preferred %d", p.PreferredReadReplica)
	}
	for _, c := range []struct {
		node    int
		version int16
		rack    string
		iso     int8
		what    string
	}{
		{0, 11, "r1", 0, "leader, consumer in the leader's rack"},
		{0, 11, "", 0, "leader, no rack"},
		{0, 11, "r9", 0, "leader, a rack with no replica"},
		{0, 11, "r2", 1, "leader, read_committed"},
		{0, 10, "", 0, "leader, v10"},
		{1, 11, "r2", 0, "follower 2, its rack"},
		{2, 12, "", 0, "follower 3, no rack"},
	} {
		p := fetch(c.node, c.version, c.rack, c.iso)
		if p.ErrorCode != 0 || records(p) != n || p.HighWatermark != n || c.version >= 11 && p.PreferredReadReplica != -1 {
			t.Fatalf("%s: code %d, records to %d, hw %d, preferred %d; want all %d records, no preferred replica",
				c.what, p.ErrorCode, records(p), p.HighWatermark, p.PreferredReadReplica, n)
		}
	}
	for _, c := range []struct {
		version int16
		iso     int8
	}{{11, 1}, {10, 0}} {
		if p := fetch(1, c.version, "r2", c.iso); p.ErrorCode != errNotLeaderOrFollower {
			t.Fatalf("follower, v%d isolation %d: code %d, want NOT_LEADER_OR_FOLLOWER", c.version, c.iso, p.ErrorCode)
		}
	}

	// A real consumer in r3, bootstrapped from the leader, reads from node 3.
	sent := func(i int) int64 { return int64(tc.nodes[i].b.metrics.bytesOut.Get()) }
	before := [3]int64{sent(0), sent(1), sent(2)}
	cl := newClient(t, tc.nodes[0].addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.Rack("r3"))
	var got []string
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for len(got) < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	sort.Strings(got)
	if len(got) != n || got[0] != topic+"-0000" || got[n-1] != fmt.Sprintf("%s-%04d", topic, n-1) {
		t.Fatalf("rack r3 consumer read %d records", len(got))
	}
	if d3, d1 := sent(2)-before[2], sent(0)-before[0]; d3 <= 0 || d1 != 0 {
		t.Fatalf("record bytes sent: node 1 %d, node 3 %d; want them all from node 3", d1, d3)
	}

	// Node 3 has no selector: as leader it names no preferred replica.
	if code, msg := createTopicOn(t, tc.nodes[0].addr, "closest-3", -1, -1, [][]int32{{3, 1, 2}}); code != 0 {
		t.Fatalf("create: %d %s", code, msg)
	}
	for i := range tc.nodes {
		tc.waitISR(i, "closest-3", []int32{3})
	}
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(11)
	req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes, req.Rack = -1, 0, 1, 1<<20, "r1"
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "closest-3"
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 1<<20, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	if p := admRaw[*kmsg.FetchResponse](t, tc.nodes[2].addr, req).Topics[0].Partitions[0]; p.ErrorCode != 0 || p.PreferredReadReplica != -1 {
		t.Fatalf("leader without a selector: code %d preferred %d", p.ErrorCode, p.PreferredReadReplica)
	}
}
