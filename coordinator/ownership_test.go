package coordinator

import (
	"fmt"
	"log/slog"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/internal/election/electiontest"
	"github.com/spate-broker/spate/logstore"
)

// gatedHost is a testHost whose loads can be held (Hold) and are counted (Passes), and whose
// appends to a partition refused (Refuse) fail as a follower's do (NOT_LEADER_OR_FOLLOWER).
type gatedHost struct {
	*testHost
	electiontest.Gate
}

func (h *gatedHost) OffsetsLog(p int32) *logstore.Log {
	h.Pass()
	return h.testHost.OffsetsLog(p)
}

func (h *gatedHost) AppendOffsets(p int32, batch []byte) error {
	if h.Refused(p) {
		return &logstore.Error{Code: errNotLeaderOrFollower, Msg: "not the leader"}
	}
	return h.testHost.AppendOffsets(p, batch)
}

func ownedConfig() Config {
	c := testConfig()
	c.PartitionOwnership = true
	return c
}

func newOwnedCoordinator(t *testing.T, h Host, cfg Config) *Coordinator {
	t.Helper()
	c, err := New(cfg, h, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// groupIn returns a group id that lives in partition p of the 3-partition offsets topic.
func groupIn(p int32, prefix string) string {
	for i := 0; ; i++ {
		if id := fmt.Sprintf("%s-%d", prefix, i); partitionFor(id, 3) == p {
			return id
		}
	}
}

func waitOwns(t *testing.T, c *Coordinator, p int32) {
	t.Helper()
	electiontest.WaitLoaded(t, c.Owns, p)
}

func commitOffset(c *Coordinator, group string, part int32, off int64, md string) int16 {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version, req.Group, req.Generation = 7, group, -1
	req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: part, Offset: off, LeaderEpoch: 2, Metadata: &md}}}}
	return c.OffsetCommit(req).Topics[0].Partitions[0].ErrorCode
}

// fetchAll returns a group's committed offsets of topic t (OffsetFetch v8) as
// "partition:offset/metadata", and the group's error code.
func fetchAll(c *Coordinator, group string) (string, int16) {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 8
	req.Groups = []kmsg.OffsetFetchRequestGroup{{Group: group}}
	g := c.OffsetFetch(req).Groups[0]
	var out []string
	for _, tp := range g.Topics {
		for _, p := range tp.Partitions {
			out = append(out, fmt.Sprintf("%d:%d/%s", p.Partition, p.Offset, *p.Metadata))
		}
	}
	sort.Strings(out)
	return fmt.Sprint(out), g.ErrorCode
}

// groupCodes sends every group API for group and returns the code of each (with a member id
// and generation that do not matter: the coordinator answers before it looks at them).
func groupCodes(t *testing.T, c *Coordinator, group string) map[string]int16 {
	t.Helper()
	out := map[string]int16{}
	join := consumerJoin(group, "", nil)
	out["JoinGroup"] = joinWait(t, c, join).ErrorCode

	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Version, sync.Group, sync.MemberID, sync.Generation = 3, group, "m", 1
	ch := make(chan *kmsg.SyncGroupResponse, 1)
	c.SyncGroup(sync, func(r *kmsg.SyncGroupResponse) { ch <- r })
	select {
	case r := <-ch:
		out["SyncGroup"] = r.ErrorCode
	case <-time.After(10 * time.Second):
		t.Fatal("sync not answered")
	}

	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Version, hb.Group, hb.MemberID, hb.Generation = 3, group, "m", 1
	out["Heartbeat"] = c.Heartbeat(hb).ErrorCode

	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Version, leave.Group = 3, group
	leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: "m"}}
	out["LeaveGroup"] = c.LeaveGroup(leave).ErrorCode

	out["OffsetCommit"] = commitOffset(c, group, 0, 1, "")

	tc := kmsg.NewPtrTxnOffsetCommitRequest()
	tc.Version, tc.TransactionalID, tc.Group, tc.ProducerID, tc.Generation = 3, "tx", group, 9, -1
	tc.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1, LeaderEpoch: -1}}}}
	out["TxnOffsetCommit"] = c.TxnOffsetCommit(tc).Topics[0].Partitions[0].ErrorCode

	_, out["OffsetFetch"] = fetchAll(c, group)
	f7 := kmsg.NewPtrOffsetFetchRequest()
	f7.Version, f7.Group = 7, group
	f7.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0}}}
	if r := c.OffsetFetch(f7); r.ErrorCode != r.Topics[0].Partitions[0].ErrorCode {
		t.Fatalf("OffsetFetch v7: group code %d, partition code %d", r.ErrorCode, r.Topics[0].Partitions[0].ErrorCode)
	} else {
		out["OffsetFetchV7"] = r.ErrorCode
	}

	d := c.DescribeGroups(&kmsg.DescribeGroupsRequest{Version: 5, Groups: []string{group}}).Groups[0]
	if d.ErrorCode != 0 && d.State != "" {
		t.Fatalf("DescribeGroups with error %d: state %q", d.ErrorCode, d.State)
	}
	out["DescribeGroups"] = d.ErrorCode

	out["DeleteGroups"] = c.DeleteGroups(&kmsg.DeleteGroupsRequest{Groups: []string{group}}).Groups[0].ErrorCode

	od := kmsg.NewPtrOffsetDeleteRequest()
	od.Group = group
	od.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
	out["OffsetDelete"] = c.OffsetDelete(od).ErrorCode

	cgh := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	cgh.Version, cgh.Group, cgh.MemberID, cgh.MemberEpoch = 1, group, "m", 1
	out["ConsumerGroupHeartbeat"] = c.ConsumerGroupHeartbeat(cgh, Client{}).ErrorCode

	cgd := kmsg.NewPtrConsumerGroupDescribeRequest()
	cgd.Groups = []string{group}
	out["ConsumerGroupDescribe"] = c.ConsumerGroupDescribe(cgd).Groups[0].ErrorCode
	return out
}

// wantAll checks that every API answered code.
func wantAll(t *testing.T, what string, codes map[string]int16, code int16) {
	t.Helper()
	if len(codes) != 13 {
		t.Fatalf("%s: %d APIs", what, len(codes))
	}
	for api, got := range codes {
		if got != code {
			t.Errorf("%s: %s answered %d, want %d", what, api, got, code)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

func listGroups(c *Coordinator) (string, int16) {
	r := c.ListGroups(kmsg.NewPtrListGroupsRequest())
	var ids []string
	for _, g := range r.Groups {
		ids = append(ids, g.Group)
	}
	sort.Strings(ids)
	return fmt.Sprint(ids), r.ErrorCode
}

// TestOwnershipNotCoordinatorUntilElected: with PartitionOwnership, Ensure creates the topic
// and loads nothing; every group API answers NOT_COORDINATOR for a group whose partition is
// not elected here (COORDINATOR_LOAD_IN_PROGRESS while it loads), ListGroups lists nothing, and
// the group is served once its partition is loaded.
func TestOwnershipNotCoordinatorUntilElected(t *testing.T) {
	h := &gatedHost{testHost: openTestHost(t, t.TempDir())}
	c := newOwnedCoordinator(t, h, ownedConfig())
	if code := c.Ensure(); code != 0 {
		t.Fatalf("Ensure: %d", code)
	}
	if len(h.logs) != 3 || h.Passes() != 0 {
		t.Fatalf("Ensure: %d partitions, %d logs read", len(h.logs), h.Passes())
	}
	g := groupIn(1, "g")
	wantAll(t, "not elected", groupCodes(t, c, g), errNotCoordinator)
	if ids, code := listGroups(c); ids != "[]" || code != 0 {
		t.Fatalf("ListGroups: %s %d", ids, code)
	}
	if c.Owns(1) {
		t.Fatal("Owns(1) before election")
	}

	release := h.Hold()
	defer release()
	c.OnElection(1, 0)
	c.OnElection(0, 0)
	wantAll(t, "loading", groupCodes(t, c, g), errCoordinatorLoadInProgress)
	if ids, code := listGroups(c); ids != "[]" || code != errCoordinatorLoadInProgress {
		t.Fatalf("ListGroups while loading: %s %d", ids, code)
	}
	c.CompleteTxn(2, 5, true) // not elected: nothing happens
	release()
	waitOwns(t, c, 1)
	waitOwns(t, c, 0)
	if c.Owns(2) {
		t.Fatal("Owns(2)")
	}
	if code := commitOffset(c, g, 3, 30, "x"); code != 0 {
		t.Fatalf("commit after election: %d", code)
	}
	if offs, code := fetchAll(c, g); offs != "[3:30/x]" || code != 0 {
		t.Fatalf("fetch after election: %s %d", offs, code)
	}
	other := groupIn(2, "o")
	if code := commitOffset(c, other, 0, 1, ""); code != errNotCoordinator {
		t.Fatalf("commit to a group of partition 2: %d", code)
	}
	if ids, code := listGroups(c); ids != fmt.Sprintf("[%s]", g) || code != 0 {
		t.Fatalf("ListGroups: %s %d", ids, code)
	}
}

// TestOwnershipLeaderMove: coordinator A serves partition p, where groups commit offsets
// (plain and transactional); A resigns: its groups answer NOT_COORDINATOR while the groups of
// its other partition are still served. B, on the same logs, is elected: while it loads its
// requests answer COORDINATOR_LOAD_IN_PROGRESS and a marker reported then is applied before
// the groups are served; then B serves what A committed.
func TestOwnershipLeaderMove(t *testing.T) {
	h := &gatedHost{testHost: openTestHost(t, t.TempDir())}
	a := newOwnedCoordinator(t, h, ownedConfig())
	if code := a.Ensure(); code != 0 {
		t.Fatalf("Ensure: %d", code)
	}
	const p, q = 2, 0
	g, kept := groupIn(p, "moving"), groupIn(q, "staying")
	a.OnElection(p, 3)
	a.OnElection(q, 1)
	waitOwns(t, a, p)
	waitOwns(t, a, q)
	for i, off := range []int64{10, 11, 12} {
		if code := commitOffset(a, g, int32(i), off, fmt.Sprint("m", i)); code != 0 {
			t.Fatalf("commit: %d", code)
		}
	}
	if code := commitOffset(a, kept, 0, 7, "k"); code != 0 {
		t.Fatalf("commit: %d", code)
	}
	txnCommit(t, a, g, 500, 3, 33) // pending until its marker
	txnCommit(t, a, g, 600, 2, 66) // aborted below
	appendMarker(t, h.testHost, a, p, 600, false)
	if a.metrics.offsets.Load() != 4 {
		t.Fatalf("offsets gauge %d", a.metrics.offsets.Load())
	}

	a.OnResignation(p, 4)
	if a.Owns(p) || !a.Owns(q) {
		t.Fatalf("after resignation: Owns(p) %v Owns(q) %v", a.Owns(p), a.Owns(q))
	}
	wantAll(t, "resigned", groupCodes(t, a, g), errNotCoordinator)
	if offs, code := fetchAll(a, kept); offs != "[0:7/k]" || code != 0 {
		t.Fatalf("group of the other partition: %s %d", offs, code)
	}
	if ids, code := listGroups(a); ids != fmt.Sprintf("[%s]", kept) || code != 0 {
		t.Fatalf("ListGroups on A: %s %d", ids, code)
	}
	a.CompleteTxn(p, 500, true) // no longer A's: nothing happens
	deadline := time.Now().Add(10 * time.Second)
	for a.metrics.offsets.Load() != 1 { // the unloaded group leaves the gauge
		if time.Now().After(deadline) {
			t.Fatalf("offsets gauge %d after resignation", a.metrics.offsets.Load())
		}
		time.Sleep(time.Millisecond)
	}

	b := newOwnedCoordinator(t, h, ownedConfig())
	if offs, code := fetchAll(b, g); offs != "[]" || code != errNotCoordinator {
		t.Fatalf("B before election: %s %d", offs, code)
	}
	release := h.Hold()
	defer release()
	b.OnElection(p, 4)
	if offs, code := fetchAll(b, g); offs != "[]" || code != errCoordinatorLoadInProgress {
		t.Fatalf("B loading: %s %d", offs, code)
	}
	// The commit marker of producer 500, as if written after the load read the log: B applies
	// it before it serves the group.
	b.CompleteTxn(p, 500, true)
	release()
	waitOwns(t, b, p)
	if offs, code := fetchAll(b, g); offs != "[0:10/m0 1:11/m1 2:12/m2 3:33/txn]" || code != 0 {
		t.Fatalf("B serves: %s %d", offs, code)
	}
	if _, code := fetchOne(t, b, g, 3, true); code != 0 {
		t.Fatalf("B: require stable: %d", code)
	}
	if offs, code := fetchAll(b, kept); offs != "[]" || code != errNotCoordinator {
		t.Fatalf("B, group of a partition not elected: %s %d", offs, code)
	}
	d := b.DescribeGroups(&kmsg.DescribeGroupsRequest{Groups: []string{g}}).Groups[0]
	if d.ErrorCode != 0 || d.State != "Empty" {
		t.Fatalf("B describes: %+v", d)
	}
	if code := commitOffset(b, g, 0, 100, "b"); code != 0 {
		t.Fatalf("B commits: %d", code)
	}
	if b.metrics.offsets.Load() != 4 {
		t.Fatalf("B offsets gauge %d", b.metrics.offsets.Load())
	}
}

// TestOwnershipResignationAnswersParkedRequests: a resignation answers the parked JoinGroup
// and SyncGroup of the partition's groups with NOT_COORDINATOR and stops their timers; a
// parked JoinGroup of a group of another partition stays parked, and its group is served.
func TestOwnershipResignationAnswersParkedRequests(t *testing.T) {
	h := &gatedHost{testHost: openTestHost(t, t.TempDir())}
	cfg := ownedConfig()
	cfg.InitialRebalanceDelay = 300 * time.Millisecond // both members of sy join in it
	c := newOwnedCoordinator(t, h, cfg)
	if code := c.Ensure(); code != 0 {
		t.Fatalf("Ensure: %d", code)
	}
	const p, q = 1, 2
	c.OnElection(p, 0)
	c.OnElection(q, 0)
	waitOwns(t, c, p)
	waitOwns(t, c, q)
	join := func(group, member string) chan *kmsg.JoinGroupResponse {
		req := consumerJoin(group, member, nil)
		req.Version, req.RebalanceTimeoutMillis = 3, 60000
		ch := make(chan *kmsg.JoinGroupResponse, 1)
		c.JoinGroup(req, Client{ID: "cl", Host: "/10.0.0.1"}, func(r *kmsg.JoinGroupResponse) { ch <- r })
		return ch
	}
	recv := func(ch chan *kmsg.JoinGroupResponse) *kmsg.JoinGroupResponse {
		t.Helper()
		select {
		case r := <-ch:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("join not answered")
		}
		return nil
	}

	// Group sy: two members, the follower's SyncGroup waits for the leader.
	sy := groupIn(p, "sy")
	j1, j2 := join(sy, ""), join(sy, "")
	r1, r2 := recv(j1), recv(j2)
	if r1.ErrorCode != 0 || r2.ErrorCode != 0 || r1.Generation != 1 {
		t.Fatalf("joins: %+v %+v", r1, r2)
	}
	follower := r1
	if r1.LeaderID == r1.MemberID {
		follower = r2
	}
	sreq := kmsg.NewPtrSyncGroupRequest()
	sreq.Version, sreq.Group, sreq.MemberID, sreq.Generation = 3, sy, follower.MemberID, 1
	synced := make(chan *kmsg.SyncGroupResponse, 1)
	c.SyncGroup(sreq, func(r *kmsg.SyncGroupResponse) { synced <- r })

	// Group jo: stable with one member; a second member's JoinGroup waits for it to rejoin.
	jo := groupIn(p, "jo")
	lead := recv(join(jo, ""))
	lsync := kmsg.NewPtrSyncGroupRequest()
	lsync.Version, lsync.Group, lsync.MemberID, lsync.Generation = 3, jo, lead.MemberID, 1
	done := make(chan *kmsg.SyncGroupResponse, 1)
	c.SyncGroup(lsync, func(r *kmsg.SyncGroupResponse) { done <- r })
	if r := <-done; r.ErrorCode != 0 {
		t.Fatalf("leader sync: %d", r.ErrorCode)
	}
	parked := join(jo, "")

	// Group ot, in the other partition, the same.
	ot := groupIn(q, "ot")
	olead := recv(join(ot, ""))
	osync := kmsg.NewPtrSyncGroupRequest()
	osync.Version, osync.Group, osync.MemberID, osync.Generation = 3, ot, olead.MemberID, 1
	c.SyncGroup(osync, func(r *kmsg.SyncGroupResponse) { done <- r })
	if r := <-done; r.ErrorCode != 0 {
		t.Fatalf("leader sync: %d", r.ErrorCode)
	}
	otherParked := join(ot, "")

	select {
	case r := <-synced:
		t.Fatalf("follower sync answered before the resignation: %+v", r)
	case r := <-parked:
		t.Fatalf("join answered before the resignation: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
	if got := c.metrics.members.Load(); got != 6 {
		t.Fatalf("members gauge %d", got)
	}

	c.OnResignation(p, 0)
	select {
	case r := <-synced:
		if r.ErrorCode != errNotCoordinator {
			t.Fatalf("parked sync: %d", r.ErrorCode)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("parked sync not answered")
	}
	if r := recv(parked); r.ErrorCode != errNotCoordinator || r.MemberID == "" {
		t.Fatalf("parked join: %+v", r)
	}
	select {
	case r := <-otherParked:
		t.Fatalf("join of the other partition answered: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Version, hb.Group, hb.MemberID, hb.Generation = 3, ot, olead.MemberID, 1
	if code := c.Heartbeat(hb).ErrorCode; code != errRebalanceInProgress {
		t.Fatalf("heartbeat of the other partition's group: %d", code)
	}
	hb.Group, hb.MemberID = jo, lead.MemberID
	if code := c.Heartbeat(hb).ErrorCode; code != errNotCoordinator {
		t.Fatalf("heartbeat of a resigned group: %d", code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.metrics.members.Load() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("members gauge %d after resignation", c.metrics.members.Load())
		}
		time.Sleep(time.Millisecond)
	}
	if n := c.metrics.byState[Stable].Load() + c.metrics.byState[CompletingRebalance].Load(); n != 0 {
		t.Fatalf("%d resigned groups still in the state gauges", n)
	}

	// Elected again: the groups come back from the log, stable with their members.
	c.OnElection(p, 1)
	waitOwns(t, c, p)
	d := c.DescribeGroups(&kmsg.DescribeGroupsRequest{Groups: []string{jo}}).Groups[0]
	if d.ErrorCode != 0 || d.State != "Stable" || len(d.Members) != 1 || d.Members[0].MemberID != lead.MemberID {
		t.Fatalf("reloaded group: %+v", d)
	}
	if code := c.Heartbeat(hb).ErrorCode; code != 0 {
		t.Fatalf("heartbeat after the election: %d", code)
	}
}

// TestOwnershipSupersededLoad: an election that supersedes one still loading (8, held, then 9)
// answers COORDINATOR_LOAD_IN_PROGRESS until it is loaded, then serves what is in the log; the
// superseded load drops the groups it built (the gauges are back to 0 once every goroutine is
// done). The epoch rules themselves (stale elections and resignations ignored, epoch -1
// always applies) are internal/election's, tested there.
func TestOwnershipSupersededLoad(t *testing.T) {
	h := &gatedHost{testHost: openTestHost(t, t.TempDir())}
	c := newOwnedCoordinator(t, h, ownedConfig())
	if code := c.Ensure(); code != 0 {
		t.Fatalf("Ensure: %d", code)
	}
	const p = 0
	g := groupIn(p, "e")
	c.OnElection(p, 5)
	waitOwns(t, c, p)
	if code := commitOffset(c, g, 1, 9, "e"); code != 0 {
		t.Fatalf("commit: %d", code)
	}
	loads := h.Passes()
	c.OnResignation(p, 4) // stale
	if !c.Owns(p) || h.Passes() != loads {
		t.Fatalf("stale resignation: Owns %v, loads %d → %d", c.Owns(p), loads, h.Passes())
	}
	c.OnResignation(p, 7)
	if _, code := fetchAll(c, g); code != errNotCoordinator || c.Owns(p) {
		t.Fatalf("after resignation: %d, Owns %v", code, c.Owns(p))
	}

	release := h.Hold()
	defer release()
	c.OnElection(p, 8)
	h.WaitPasses(t, loads) // election 8 is loading
	c.OnElection(p, 9)
	if _, code := fetchAll(c, g); code != errCoordinatorLoadInProgress {
		t.Fatalf("while 9 loads: %d", code)
	}
	release()
	waitOwns(t, c, p)
	if offs, code := fetchAll(c, g); offs != "[1:9/e]" || code != 0 {
		t.Fatalf("after election 9: %s %d", offs, code)
	}
	c.OnResignation(p, -1)
	if _, code := fetchAll(c, g); code != errNotCoordinator || c.Owns(p) {
		t.Fatalf("after resignation with epoch -1: %d, Owns %v", code, c.Owns(p))
	}
	c.Close()
	if n, e := c.metrics.offsets.Load(), c.metrics.byState[Empty].Load(); n != 0 || e != 0 {
		t.Fatalf("gauges: offsets %d, empty groups %d", n, e)
	}
}

// TestOwnershipNotLeaderAppend: an append the host refuses because it does not lead the
// partition (NOT_LEADER_OR_FOLLOWER) answers NOT_COORDINATOR, so the client looks the
// coordinator up again.
func TestOwnershipNotLeaderAppend(t *testing.T) {
	h := &gatedHost{testHost: openTestHost(t, t.TempDir())}
	c := newOwnedCoordinator(t, h, ownedConfig())
	if code := c.Ensure(); code != 0 {
		t.Fatalf("Ensure: %d", code)
	}
	const p = 1
	g := groupIn(p, "nl")
	c.OnElection(p, 0)
	waitOwns(t, c, p)
	h.Refuse(p)
	if code := commitOffset(c, g, 0, 1, ""); code != errNotCoordinator {
		t.Fatalf("commit: %d", code)
	}
	tc := kmsg.NewPtrTxnOffsetCommitRequest()
	tc.Version, tc.TransactionalID, tc.Group, tc.ProducerID, tc.Generation = 3, "tx", g, 9, -1
	tc.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1, LeaderEpoch: -1}}}}
	if code := c.TxnOffsetCommit(tc).Topics[0].Partitions[0].ErrorCode; code != errNotCoordinator {
		t.Fatalf("txn commit: %d", code)
	}
	// The leader's SyncGroup cannot store the group's assignment.
	jreq := consumerJoin(g, "", nil)
	jreq.Version = 3
	r := joinWait(t, c, jreq)
	if r.ErrorCode != 0 || r.Generation != 1 || r.LeaderID != r.MemberID {
		t.Fatalf("join: %+v", r)
	}
	sreq := kmsg.NewPtrSyncGroupRequest()
	sreq.Version, sreq.Group, sreq.MemberID, sreq.Generation = 3, g, r.MemberID, 1
	synced := make(chan *kmsg.SyncGroupResponse, 1)
	c.SyncGroup(sreq, func(r *kmsg.SyncGroupResponse) { synced <- r })
	if s := <-synced; s.ErrorCode != errNotCoordinator {
		t.Fatalf("sync: %+v", s)
	}
	if offs, code := fetchAll(c, g); offs != "[]" || code != 0 {
		t.Fatalf("fetch: %s %d", offs, code)
	}
}
