package broker

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/coordinator"
)

// timedJoin sends a JoinGroup (a member id given) and returns its answer with when it came.
type timedJoinResp struct {
	resp *kmsg.JoinGroupResponse
	at   time.Time
	err  error
}

func timedJoin(addr string, j joinSpec) chan timedJoinResp {
	ch := make(chan timedJoinResp, 1)
	go func() {
		resp, err := grpReq[*kmsg.JoinGroupResponse](addr, j.request())
		ch <- timedJoinResp{resp, time.Now(), err}
	}()
	return ch
}

func waitTimedJoin(t *testing.T, ch chan timedJoinResp) timedJoinResp {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("join: %v", r.err)
		}
		if r.resp.ErrorCode != 0 {
			t.Fatalf("join: error %d", r.resp.ErrorCode)
		}
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("JoinGroup not answered")
	}
	return timedJoinResp{}
}

// memberID asks for a member id (KIP-394's first JoinGroup, answered MEMBER_ID_REQUIRED).
func memberID(t *testing.T, addr string, j joinSpec) string {
	t.Helper()
	r := grpMust[*kmsg.JoinGroupResponse](t, addr, j.request())
	if r.ErrorCode != 79 || r.MemberID == "" {
		t.Fatalf("first join: error %d member %q, want MEMBER_ID_REQUIRED with an id", r.ErrorCode, r.MemberID)
	}
	return r.MemberID
}

// TestGroupInitialRebalanceDelay: group.initial.rebalance.delay.ms (here 1 s) holds the first
// rebalance of an empty classic group. A lone member's JoinGroup is answered no earlier than
// the delay (and not much later: no other member came), generation 1 with itself the only
// member. Two members joining 300 ms apart, within the delay, are answered together, no
// earlier than the delay after the first (the delay is extended once for the newcomer, as
// Kafka's InitialDelayedJoin does, within the rebalance timeout): one generation, 1, the same
// leader, the leader's answer listing both members and the follower's none — not a
// generation of one member followed by a rebalance.
func TestGroupInitialRebalanceDelay(t *testing.T) {
	const delay = time.Second
	tb := grpProtoBroker(t, func(c *coordinator.Config) { c.InitialRebalanceDelay = delay })
	addr := tb.addr

	// A lone member.
	lone := joinSpec{group: "lone", rebalanceMs: 10000}
	lone.memberID = memberID(t, addr, lone)
	sent := time.Now()
	ch := timedJoin(addr, lone)
	time.Sleep(delay / 2)
	if d := describe(t, addr, 5, "lone"); d.State != "PreparingRebalance" {
		t.Fatalf("lone group half-way through the delay: %s, want PreparingRebalance", d.State)
	}
	r := waitTimedJoin(t, ch)
	if took := r.at.Sub(sent); took < delay || took > delay+time.Second {
		t.Fatalf("lone member's JoinGroup answered after %v, want the delay %v (and not a second more)", took, delay)
	}
	if r.resp.Generation != 1 || r.resp.LeaderID != lone.memberID || len(r.resp.Members) != 1 || r.resp.Members[0].MemberID != lone.memberID {
		t.Fatalf("lone member's join: generation %d leader %s members %+v", r.resp.Generation, r.resp.LeaderID, r.resp.Members)
	}

	// Two members within the delay.
	a := joinSpec{group: "pair", rebalanceMs: 10000}
	b := a
	a.memberID, b.memberID = memberID(t, addr, a), memberID(t, addr, b)
	sentA := time.Now()
	chA := timedJoin(addr, a)
	time.Sleep(300 * time.Millisecond)
	select {
	case r := <-chA:
		t.Fatalf("first member answered after %v, within the delay: %+v", r.at.Sub(sentA), r.resp)
	default:
	}
	chB := timedJoin(addr, b)
	ra, rb := waitTimedJoin(t, chA), waitTimedJoin(t, chB)
	tookA := ra.at.Sub(sentA)
	if tookA < delay || tookA > 10*time.Second {
		t.Fatalf("first member's JoinGroup answered after %v, want at least the delay %v, within the rebalance timeout", tookA, delay)
	}
	if ra.resp.Generation != 1 || rb.resp.Generation != 1 || ra.resp.LeaderID != rb.resp.LeaderID {
		t.Fatalf("joins: generations %d and %d, leaders %s and %s; want one generation, 1", ra.resp.Generation, rb.resp.Generation, ra.resp.LeaderID, rb.resp.LeaderID)
	}
	leader, follower := ra.resp, rb.resp
	if leader.LeaderID != leader.MemberID {
		leader, follower = follower, leader
	}
	var ids []string
	for _, m := range leader.Members {
		ids = append(ids, m.MemberID)
	}
	sort.Strings(ids)
	want := []string{a.memberID, b.memberID}
	sort.Strings(want)
	if leader.LeaderID != leader.MemberID || fmt.Sprint(ids) != fmt.Sprint(want) || len(follower.Members) != 0 {
		t.Fatalf("leader %s answered members %v (want %v), follower %s answered %d members", leader.MemberID, ids, want, follower.MemberID, len(follower.Members))
	}
	if d := describe(t, addr, 5, "pair"); d.State != "CompletingRebalance" || len(d.Members) != 2 {
		t.Fatalf("pair after the joins: %s with %d members", d.State, len(d.Members))
	}
	t.Logf("lone member answered after %v; the pair after %v and %v (from the first join)", r.at.Sub(sent), tookA, rb.at.Sub(sentA))
}

// groupGauges reads the classic groups' series from the broker's metric set:
// spate_groups{state=...} by state, spate_group_members and spate_group_rebalances_total.
func groupGauges(t *testing.T, tb *testBroker) string {
	t.Helper()
	var buf bytes.Buffer
	tb.b.Metrics().WritePrometheus(&buf)
	states := map[string]string{}
	var members, rebalances string
	for _, l := range strings.Split(buf.String(), "\n") {
		name, value, ok := strings.Cut(l, " ")
		if !ok {
			continue
		}
		if _, err := strconv.ParseFloat(value, 64); err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(name, `spate_groups{state="`):
			states[strings.TrimSuffix(strings.TrimPrefix(name, `spate_groups{state="`), `"}`)] = value
		case name == "spate_group_members":
			members = value
		case name == "spate_group_rebalances_total":
			rebalances = value
		}
	}
	var out []string
	for _, st := range []string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable"} {
		out = append(out, st+"="+states[st])
		delete(states, st)
	}
	if len(states) != 0 {
		t.Fatalf("spate_groups has other states: %v", states)
	}
	return strings.Join(out, " ") + " members=" + members + " rebalances=" + rebalances
}

// TestGroupStateGauges: the gauges spate_groups{state} (classic groups by state) and
// spate_group_members follow a group through Empty → PreparingRebalance →
// CompletingRebalance → Stable, a second member's rebalance back to Stable, both members
// leaving (Empty) and DeleteGroups (no group); spate_group_rebalances_total counts the two
// generations with members.
func TestGroupStateGauges(t *testing.T) {
	// The initial delay keeps the first join parked while the gauges are read.
	tb := grpProtoBroker(t, func(c *coordinator.Config) { c.InitialRebalanceDelay = 2 * time.Second })
	addr := tb.addr
	const g = "gauged"
	expect := func(when, want string) {
		t.Helper()
		if got := groupGauges(t, tb); got != want {
			t.Fatalf("%s: %s, want %s", when, got, want)
		}
	}
	expect("before any group", "Empty=0 PreparingRebalance=0 CompletingRebalance=0 Stable=0 members=0 rebalances=0")

	a := joinSpec{group: g, rebalanceMs: 5000}
	a.memberID = memberID(t, addr, a)
	expect("after a member id was given", "Empty=1 PreparingRebalance=0 CompletingRebalance=0 Stable=0 members=0 rebalances=0")
	chA := timedJoin(addr, a)
	waitState(t, addr, g, "PreparingRebalance")
	expect("first join parked", "Empty=0 PreparingRebalance=1 CompletingRebalance=0 Stable=0 members=1 rebalances=0")
	ra := waitTimedJoin(t, chA).resp
	expect("joined", "Empty=0 PreparingRebalance=0 CompletingRebalance=1 Stable=0 members=1 rebalances=1")
	if s := syncGroup(t, addr, g, a.memberID, nil, ra.Generation, map[string][]byte{a.memberID: []byte("x")}); s.ErrorCode != 0 {
		t.Fatalf("sync: %+v", s)
	}
	expect("synced", "Empty=0 PreparingRebalance=0 CompletingRebalance=0 Stable=1 members=1 rebalances=1")

	// A second member: a rebalance the first joins again.
	b := joinSpec{group: g, rebalanceMs: 5000}
	b.memberID = memberID(t, addr, b)
	chB := timedJoin(addr, b)
	waitState(t, addr, g, "PreparingRebalance")
	expect("second member's join parked", "Empty=0 PreparingRebalance=1 CompletingRebalance=0 Stable=0 members=2 rebalances=1")
	chA = timedJoin(addr, a)
	ra, rb := waitTimedJoin(t, chA).resp, waitTimedJoin(t, chB).resp
	if ra.Generation != 2 || rb.Generation != 2 {
		t.Fatalf("rejoin: generations %d and %d, want 2", ra.Generation, rb.Generation)
	}
	expect("both joined", "Empty=0 PreparingRebalance=0 CompletingRebalance=1 Stable=0 members=2 rebalances=2")
	leader := ra
	if rb.LeaderID == rb.MemberID {
		leader = rb
	}
	if s := syncGroup(t, addr, g, leader.MemberID, nil, 2, map[string][]byte{a.memberID: []byte("x"), b.memberID: []byte("y")}); s.ErrorCode != 0 {
		t.Fatalf("leader sync: %+v", s)
	}
	expect("leader synced", "Empty=0 PreparingRebalance=0 CompletingRebalance=0 Stable=1 members=2 rebalances=2")

	req := kmsg.NewPtrLeaveGroupRequest()
	req.Version, req.Group = 5, g
	req.Members = []kmsg.LeaveGroupRequestMember{{MemberID: a.memberID}, {MemberID: b.memberID}}
	if resp := grpMust[*kmsg.LeaveGroupResponse](t, addr, req); resp.ErrorCode != 0 || len(resp.Members) != 2 || resp.Members[0].ErrorCode != 0 || resp.Members[1].ErrorCode != 0 {
		t.Fatalf("leave: %+v", resp)
	}
	expect("both left", "Empty=1 PreparingRebalance=0 CompletingRebalance=0 Stable=0 members=0 rebalances=2")

	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Version, del.Groups = 2, []string{g}
	if resp := grpMust[*kmsg.DeleteGroupsResponse](t, addr, del); len(resp.Groups) != 1 || resp.Groups[0].ErrorCode != 0 {
		t.Fatalf("delete: %+v", resp)
	}
	expect("deleted", "Empty=0 PreparingRebalance=0 CompletingRebalance=0 Stable=0 members=0 rebalances=2")
}
