package coordinator

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/logstore"
)

// TestPartitionForIsKafkasHash checks java.lang.String.hashCode (UTF-16 code units, int32
// overflow) and Utils.abs(hash) % partitions, including Integer.MIN_VALUE → 0. Expected
// values computed independently.
func TestPartitionForIsKafkasHash(t *testing.T) {
	for _, tc := range []struct {
		s    string
		hash int32
		p50  int32
	}{
		{"", 0, 0},
		{"a", 97, 47},
		{"hello", 99162322, 22},
		{"polygenelubricants", -2147483648, 0},
		{"my-group", -1906497762, 12},
		{"consumer-group-7", 147483026, 26},
		{"grüße", 98768023, 23},
		{"\U0001F600", 1772899, 49}, // a surrogate pair
		{"Aa", 2112, 12},
		{"BB", 2112, 12},
	} {
		if h := javaHashCode(tc.s); h != tc.hash {
			t.Errorf("hashCode(%q) = %d, want %d", tc.s, h, tc.hash)
		}
		if p := partitionFor(tc.s, 50); p != tc.p50 {
			t.Errorf("partitionFor(%q, 50) = %d, want %d", tc.s, p, tc.p50)
		}
	}
}

// testHost is a Host over real logs in a folder.
type testHost struct {
	t      *testing.T
	dir    string
	logs   []*logstore.Log
	topics map[string]int32
}

func openTestHost(t *testing.T, dir string) *testHost {
	h := &testHost{t: t, dir: dir, topics: map[string]int32{"t": 4}}
	for p := 0; ; p++ {
		d := filepath.Join(dir, fmt.Sprintf("%s-%d", OffsetsTopic, p))
		if _, err := os.Stat(d); err != nil {
			break
		}
		h.open(d)
	}
	t.Cleanup(h.close)
	return h
}

func (h *testHost) open(d string) {
	l, err := logstore.Open(d, logstore.DefaultConfig(), logstore.OpenOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	h.logs = append(h.logs, l)
}

func (h *testHost) close() {
	for _, l := range h.logs {
		l.Close()
	}
	h.logs = nil
}

func (h *testHost) OffsetsTopic(create bool, n int32) (int32, error) {
	if len(h.logs) == 0 && create {
		for p := int32(0); p < n; p++ {
			h.open(filepath.Join(h.dir, fmt.Sprintf("%s-%d", OffsetsTopic, p)))
		}
	}
	return int32(len(h.logs)), nil
}

func (h *testHost) OffsetsLog(p int32) *logstore.Log { return h.logs[p] }

func (h *testHost) AppendOffsets(p int32, batch []byte) error {
	var info logstore.AppendInfo
	return h.logs[p].AppendAsLeader(batch, 0, false, &info)
}

func (h *testHost) PartitionCount(topic string) int32 { return h.topics[topic] }

func testConfig() Config {
	c := DefaultConfig()
	c.OffsetsTopicPartitions = 3
	c.InitialRebalanceDelay = 10 * time.Millisecond
	c.MinSessionTimeout = 10 * time.Millisecond
	return c
}

func newTestCoordinator(t *testing.T, h *testHost) *Coordinator {
	t.Helper()
	c, err := New(testConfig(), h, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func joinWait(t *testing.T, c *Coordinator, req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	t.Helper()
	ch := make(chan *kmsg.JoinGroupResponse, 1)
	c.JoinGroup(req, Client{ID: "cl", Host: "/10.0.0.1"}, func(r *kmsg.JoinGroupResponse) { ch <- r })
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("join not answered")
	}
	return nil
}

func consumerJoin(group, member string, instance *string) *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = 5
	req.Group, req.MemberID, req.InstanceID = group, member, instance
	req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 30000, 1000
	req.ProtocolType = "consumer"
	md := kmsg.ConsumerMemberMetadata{Topics: []string{"t"}}
	req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: md.AppendTo(nil)}}
	return req
}

// TestStoredGroupsAndOffsetsReload writes groups and offsets through the coordinator, checks
// the records are Kafka's (key and value versions, tombstones), and reloads them into a new
// coordinator: a Stable group with its member, assignment and generation; offsets with their
// metadata; a deleted group gone.
func TestStoredGroupsAndOffsetsReload(t *testing.T) {
	dir := t.TempDir()
	h := openTestHost(t, dir)
	c := newTestCoordinator(t, h)
	if code := c.Ensure(); code != 0 {
		t.Fatalf("ensure: %d", code)
	}
	inst := kmsg.StringPtr("static-1")
	r := joinWait(t, c, consumerJoin("stable", "", inst))
	if r.ErrorCode != 0 || r.Generation != 1 {
		t.Fatalf("join: %+v", r)
	}
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Version, sync.Group, sync.MemberID, sync.InstanceID, sync.Generation = 3, "stable", r.MemberID, inst, 1
	sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: r.MemberID, MemberAssignment: []byte("plan")}}
	done := make(chan *kmsg.SyncGroupResponse, 1)
	c.SyncGroup(sync, func(s *kmsg.SyncGroupResponse) { done <- s })
	if s := <-done; s.ErrorCode != 0 || string(s.MemberAssignment) != "plan" {
		t.Fatalf("sync: %+v", s)
	}
	commit := func(group, member string, gen int32, part int32, off int64, md string) {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Version, req.Group, req.MemberID, req.Generation, req.InstanceID = 7, group, member, gen, nil
		if member != "" {
			req.InstanceID = inst
		}
		req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: part, Offset: off, LeaderEpoch: 3, Metadata: &md}}}}
		if code := c.OffsetCommit(req).Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("commit %s: %d", group, code)
		}
	}
	commit("stable", r.MemberID, 1, 0, 10, "m0")
	commit("stable", r.MemberID, 1, 1, 11, "")
	commit("stable", r.MemberID, 1, 1, 12, "m1") // the later commit wins
	commit("simple", "", -1, 2, 20, "s")
	commit("doomed", "", -1, 3, 30, "d")
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{"doomed"}
	if code := c.DeleteGroups(del).Groups[0].ErrorCode; code != 0 {
		t.Fatalf("delete: %d", code)
	}

	// The records: offset keys v1 with values v3, a group key v2 with value v3, tombstones.
	kinds := map[string]int{}
	for p, l := range h.logs {
		var res logstore.ReadResult
		if err := l.Read(0, 1<<20, l.LogEndOffset(), true, &res); err != nil {
			t.Fatal(err)
		}
		for _, reg := range res.Regions {
			var hdr logstore.BatchHeader
			for b := reg.Data; len(b) > 0; b = b[hdr.Size():] {
				logstore.ParseBatchHeader(b, &hdr)
				if hdr.ProducerID != -1 || hdr.Compression() != 0 {
					t.Fatalf("batch header %+v", hdr)
				}
				forEachKeyValue(b[logstore.BatchHeaderSize:hdr.Size()], hdr.RecordCount, func(key, value []byte) {
					var k kmsg.OffsetCommitKey
					if err := k.ReadFrom(key); err == nil && k.Version == 1 {
						if partitionFor(k.Group, 3) != int32(p) {
							t.Fatalf("group %s in partition %d", k.Group, p)
						}
						if value == nil {
							kinds["offset tombstone "+k.Group]++
							return
						}
						var v kmsg.OffsetCommitValue
						if err := v.ReadFrom(value); err != nil || v.Version != 3 || v.LeaderEpoch != 3 {
							t.Fatalf("offset value %+v %v", v, err)
						}
						kinds["offset "+k.Group]++
						return
					}
					var gk kmsg.GroupMetadataKey
					if err := gk.ReadFrom(key); err != nil || gk.Version != 2 {
						t.Fatalf("key %x: %v", key, err)
					}
					if value == nil {
						kinds["group tombstone "+gk.Group]++
						return
					}
					var gv kmsg.GroupMetadataValue
					if err := gv.ReadFrom(value); err != nil || gv.Version != 3 {
						t.Fatalf("group value %+v %v", gv, err)
					}
					kinds["group "+gk.Group]++
				})
			}
		}
		res.Release()
	}
	want := "map[group stable:1 group tombstone doomed:1 offset doomed:1 offset simple:1 offset stable:3 offset tombstone doomed:1]"
	if got := fmt.Sprint(kinds); got != want {
		t.Fatalf("records: %s\nwant %s", got, want)
	}

	c.Close()
	h.close()
	h = openTestHost(t, dir)
	c = newTestCoordinator(t, h)
	d := c.DescribeGroups(&kmsg.DescribeGroupsRequest{Groups: []string{"stable", "simple", "doomed"}})
	st, sm, dm := d.Groups[0], d.Groups[1], d.Groups[2]
	if st.State != "Stable" || st.Protocol != "range" || len(st.Members) != 1 || st.Members[0].MemberID != r.MemberID ||
		*st.Members[0].InstanceID != "static-1" || string(st.Members[0].MemberAssignment) != "plan" || st.Members[0].ClientHost != "/10.0.0.1" {
		t.Fatalf("reloaded stable group: %+v", st)
	}
	if sm.State != "Empty" || sm.ProtocolType != "" || dm.State != "Dead" {
		t.Fatalf("reloaded simple/doomed: %+v / %+v", sm, dm)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.InstanceID, hb.Generation = "stable", r.MemberID, inst, 1
	if code := c.Heartbeat(hb).ErrorCode; code != 0 {
		t.Fatalf("heartbeat after reload: %d", code)
	}
	f := kmsg.NewPtrOffsetFetchRequest()
	f.Version = 8
	f.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "stable"}, {Group: "simple"}, {Group: "doomed"}}
	got := map[string]string{}
	for _, g := range c.OffsetFetch(f).Groups {
		for _, tp := range g.Topics {
			for _, p := range tp.Partitions {
				got[fmt.Sprintf("%s/%d", g.Group, p.Partition)] = fmt.Sprintf("%d/%d/%s", p.Offset, p.LeaderEpoch, *p.Metadata)
			}
		}
	}
	if s := fmt.Sprint(got); s != "map[simple/2:20/3/s stable/0:10/3/m0 stable/1:12/3/m1]" {
		t.Fatalf("reloaded offsets: %s", s)
	}
}

func TestInvalidTransitionPanics(t *testing.T) {
	c := &Coordinator{metrics: newGroupMetrics(metrics.NewSet())}
	defer func() {
		if r := recover(); r == nil || fmt.Sprint(r)[:4] != "BUG:" {
			t.Fatalf("recovered %v", r)
		}
	}()
	g := newGroup(c, "g", 0)
	g.transition(Stable) // Empty → Stable skips the rebalance
}
