package compat

// confluent-kafka-go (librdkafka) consumers of the KIP-848 consumer group protocol
// (group.protocol=consumer: ConsumerGroupHeartbeat, the assignment computed by the broker's
// group.remote.assignor, OffsetCommit v9 with the member epoch), and the online upgrade of a
// classic group of librdkafka consumers to a consumer group, one member at a time.
//
// A consumer group is described with ConsumerGroupDescribe (DescribeGroups answers it Dead,
// GROUP_ID_NOT_FOUND): consumerGroupOwners plays groupOwners' part for it.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/spate-broker/spate/broker"
)

// startGroupBroker848 is startGroupBroker with a consumer-group heartbeat interval of 200 ms
// (librdkafka heartbeats as the broker says; Kafka's 5 s would make every rebalance slow) and
// a session timeout of 6 s.
func startGroupBroker848(t *testing.T) *testBroker {
	t.Helper()
	return startBroker(t, func(c *broker.Config) {
		groupTimers(c)
		c.Groups.ConsumerHeartbeatInterval = 200 * time.Millisecond
		c.Groups.ConsumerSessionTimeout = 6 * time.Second
	})
}

// confluent848Conf is the group configuration of a consumer-protocol member: librdkafka
// refuses partition.assignment.strategy, session.timeout.ms and heartbeat.interval.ms with
// it. assignor "" leaves group.remote.assignor unset (the broker's default).
func confluent848Conf(assignor string) kafka.ConfigMap {
	conf := kafka.ConfigMap{"group.protocol": "consumer"}
	if assignor != "" {
		conf["group.remote.assignor"] = assignor
	}
	if debugLevel() > 0 {
		conf["debug"] = "cgrp,consumer,protocol,broker"
	}
	return conf
}

func confluentClassicConf(strategy string) kafka.ConfigMap {
	conf := kafka.ConfigMap{"partition.assignment.strategy": strategy, "session.timeout.ms": 6000, "heartbeat.interval.ms": 200}
	if debugLevel() > 0 {
		conf["debug"] = "cgrp,consumer,protocol,broker"
	}
	return conf
}

// consumerGroupOwners waits until ConsumerGroupDescribe reports the consumer group Stable with
// exactly the members named (by client id), each at the group epoch with its assignment equal
// to its target, covering every partition of topic exactly once; it returns the owner of each
// partition and the description.
func consumerGroupOwners(t *testing.T, adm *kadm.Client, group, topic string, partitions int32, members ...string) (map[int32]string, kadm.DescribedConsumerGroup) {
	t.Helper()
	var dg kadm.DescribedConsumerGroup
	owners := waitGroupSettled(t, 30*time.Second, group, members, func(ctx context.Context) (map[int32]string, string, error) {
		dgs, err := adm.DescribeConsumerGroups(ctx, group)
		if err != nil {
			return nil, "", err
		}
		dg = dgs[group]
		owners, why := consumerGroupCoverage(dg, topic, partitions, members)
		return owners, why, nil
	})
	return owners, dg
}

func consumerGroupCoverage(dg kadm.DescribedConsumerGroup, topic string, partitions int32, members []string) (map[int32]string, string) {
	if dg.Err != nil {
		return nil, dg.Err.Error()
	}
	if dg.State != "Stable" || dg.Epoch != dg.AssignmentEpoch {
		return nil, fmt.Sprintf("state %s, epoch %d, assignment epoch %d", dg.State, dg.Epoch, dg.AssignmentEpoch)
	}
	var ms []memberAssignment
	for _, m := range dg.Members {
		if m.MemberEpoch != dg.Epoch {
			return nil, fmt.Sprintf("member %s at epoch %d, group at %d", m.ClientID, m.MemberEpoch, dg.Epoch)
		}
		if fmt.Sprint(m.Assignment.Sorted()) != fmt.Sprint(m.TargetAssignment.Sorted()) {
			return nil, fmt.Sprintf("member %s assigned %v, target %v", m.ClientID, m.Assignment.Sorted(), m.TargetAssignment.Sorted())
		}
		ma := memberAssignment{client: m.ClientID, topics: map[string][]int32{}}
		for tn, ps := range m.Assignment {
			for p := range ps {
				ma.topics[tn] = append(ma.topics[tn], p)
			}
		}
		ms = append(ms, ma)
	}
	return assignmentCoverage(ms, topic, partitions, members)
}

// groupTypeOf is the group's type as ListGroups v5 (KIP-848 types filter) gives it: "classic",
// "consumer", or "" when neither lists it.
func groupTypeOf(t *testing.T, adm *kadm.Client, group string) string {
	t.Helper()
	found := ""
	for _, typ := range []string{"classic", "consumer"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ls, err := adm.ListGroupsByType(ctx, []string{typ})
		cancel()
		if err != nil {
			t.Fatalf("list %s groups: %v", typ, err)
		}
		if _, ok := ls[group]; ok {
			if found != "" {
				t.Fatalf("group %s listed as both %s and %s", group, found, typ)
			}
			found = typ
		}
	}
	return found
}

// checkConsumerGroupType asserts that group is a consumer (KIP-848) group: ListGroups lists it
// with type consumer only, DescribeGroups (v6) answers it Dead with GROUP_ID_NOT_FOUND, as
// Kafka 4 does (KIP-1043), and ConsumerGroupDescribe gives each member named the member type
// wanted (0 classic, 1 consumer).
func checkConsumerGroupType(t *testing.T, adm *kadm.Client, group string, memberTypes map[string]int8) kadm.DescribedConsumerGroup {
	t.Helper()
	if typ := groupTypeOf(t, adm, group); typ != "consumer" {
		t.Fatalf("ListGroups: group %s of type %q, want consumer", group, typ)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dgs, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatalf("DescribeGroups: %v", err)
	}
	if dg := dgs[group]; dg.State != "Dead" || !errors.Is(dg.Err, kerr.GroupIDNotFound) {
		t.Errorf("DescribeGroups of a consumer group: state %q, err %v; want Dead, GROUP_ID_NOT_FOUND", dg.State, dg.Err)
	}
	cgs, err := adm.DescribeConsumerGroups(ctx, group)
	if err != nil {
		t.Fatalf("ConsumerGroupDescribe: %v", err)
	}
	cg := cgs[group]
	if cg.Err != nil {
		t.Fatalf("ConsumerGroupDescribe: %v", cg.Err)
	}
	got := map[string]int8{}
	for _, m := range cg.Members {
		got[m.ClientID] = m.MemberType
	}
	if fmt.Sprint(got) != fmt.Sprint(memberTypes) {
		t.Errorf("ConsumerGroupDescribe member types %v, want %v", got, memberTypes)
	}
	return cg
}

// ownershipLog is the partitions' owners as the members' rebalance callbacks say, in the
// order the callbacks ran: a member's revocation callback returns before librdkafka
// acknowledges the revocation (or leaves the group), and a partition is assigned to another
// member only after that, so a partition assigned while another member still owns it is owned
// by two at once.
type ownershipLog struct {
	mu       sync.Mutex
	owner    map[int32]string
	events   int
	overlaps []string
}

func newOwnershipLog() *ownershipLog { return &ownershipLog{owner: map[int32]string{}} }

func (o *ownershipLog) note(who string, assigned bool, parts []int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events++
	for _, p := range parts {
		switch cur := o.owner[p]; {
		case assigned && cur != "" && cur != who:
			o.overlaps = append(o.overlaps, fmt.Sprintf("partition %d assigned to %s while %s owned it (event %d)", p, who, cur, o.events))
			o.owner[p] = who
		case assigned:
			o.owner[p] = who
		case cur == who:
			delete(o.owner, p)
		}
	}
}

func (o *ownershipLog) check(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.events == 0 {
		t.Errorf("ownership: no rebalance callback ran")
	}
	for _, s := range o.overlaps {
		t.Errorf("ownership: %s", s)
	}
}

// TestConfluentConsumerGroup848 runs three confluent-kafka-go consumers with
// group.protocol=consumer (KIP-848) and group.remote.assignor uniform, then range, over six
// partitions, a synchronous CommitMessage (OffsetCommit v9 with the member epoch) after each
// record. The group is a consumer group (ListGroups type, DescribeGroups Dead /
// GROUP_ID_NOT_FOUND, ConsumerGroupDescribe with the assignor asked for and three
// consumer-protocol members), Stable with two partitions per member, and each consumer's own
// view of its assignment is what the broker assigned. 600 records are each delivered exactly
// once, with their value, to their partition's owner, and committed, with no new target
// assignment and no new group epoch; the committed offsets are the log ends.
func TestConfluentConsumerGroup848(t *testing.T) {
	for _, assignor := range []string{"uniform", "range"} {
		t.Run(assignor, func(t *testing.T) {
			start := time.Now()
			g := newGroupTopic(t, startGroupBroker848(t), "confluent848-group", "confluent848-consumers", 6)

			l := newGroupLedger(g.partitions)
			own := newOwnershipLog()
			var ms []*confluentMember
			var names []string
			types := map[string]int8{}
			for i := 0; i < 3; i++ {
				name := fmt.Sprintf("confluent848-%s-%d", assignor, i)
				names = append(names, name)
				types[name] = 1
				ms = append(ms, startConfluentMemberWith(t, g.tb.addr, g.group, g.topic, name, confluent848Conf(assignor), l, 0, own.note))
			}
			owners, dg := consumerGroupOwners(t, g.adm, g.group, g.topic, g.partitions, names...)
			confluentCheckOwns(t, owners, ms, 2)
			if dg.AssignorName != assignor {
				t.Errorf("ConsumerGroupDescribe: assignor %q, want %q", dg.AssignorName, assignor)
			}
			checkConsumerGroupType(t, g.adm, g.group, types)
			settled := time.Since(start)

			g.checkStable(t, l, owners, func() {
				if _, after := consumerGroupOwners(t, g.adm, g.group, g.topic, g.partitions, names...); after.Epoch != dg.Epoch {
					t.Fatalf("group epoch %d, then %d while membership was stable", dg.Epoch, after.Epoch)
				}
			})
			own.check(t)
			t.Logf("group epoch %d, settled in %v; 600 records processed once each, in %v", dg.Epoch, settled, time.Since(start))
		})
	}
}

// TestConfluentConsumerGroup848MembershipMidStream runs runMidStreamMembership with
// group.protocol=consumer confluent-kafka-go consumers (uniform and range assignors), the
// group described with ConsumerGroupDescribe: a third consumer joins while records flow, then
// one leaves while they flow. No record is lost, each is processed exactly once, a record is
// delivered again only when its commit failed, and no partition is owned by two consumers at
// once (the rebalance callbacks' order).
func TestConfluentConsumerGroup848MembershipMidStream(t *testing.T) {
	for _, assignor := range []string{"uniform", "range"} {
		t.Run(assignor, func(t *testing.T) {
			g := newGroupTopic(t, startGroupBroker848(t), "confluent848-midstream", "confluent848-midstream-consumers", 6)
			own := newOwnershipLog()
			runMidStreamMembership(t, midStreamCase{
				groupTopic: g, from: 0, prefix: "confluent848-" + assignor,
				start: func(t *testing.T, name string, l *groupLedger) func() {
					return startConfluentMemberWith(t, g.tb.addr, g.group, g.topic, name, confluent848Conf(assignor), l, 0, own.note).close
				},
				owners: func(t *testing.T, members ...string) map[int32]string {
					owners, _ := consumerGroupOwners(t, g.adm, g.group, g.topic, g.partitions, members...)
					return owners
				},
			})
			own.check(t)
		})
	}
}

// mixedGroupOwners waits until the group — classic (DescribeGroups) or consumer
// (ConsumerGroupDescribe) — is Stable with exactly the members named, covering every
// partition once; it returns the owners and the group's type.
func mixedGroupOwners(t *testing.T, adm *kadm.Client, group, topic string, partitions int32, members ...string) (map[int32]string, string) {
	t.Helper()
	typ := ""
	owners := waitGroupSettled(t, 30*time.Second, group, members, func(ctx context.Context) (map[int32]string, string, error) {
		cgs, err := adm.DescribeConsumerGroups(ctx, group)
		if err != nil {
			return nil, "", err
		}
		if !errors.Is(cgs[group].Err, kerr.GroupIDNotFound) {
			owners, why := consumerGroupCoverage(cgs[group], topic, partitions, members)
			typ = "consumer"
			if why != "" {
				why = "consumer group: " + why
			}
			return owners, why, nil
		}
		dgs, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return nil, "", err
		}
		owners, why := groupCoverage(dgs[group], topic, partitions, members)
		typ = "classic"
		if why != "" {
			why = "classic group: " + why
		}
		return owners, why, nil
	})
	return owners, typ
}

// TestConfluentConsumerGroup848RollingUpgrade upgrades a group of three classic
// confluent-kafka-go consumers (range, then cooperative-sticky) to the consumer protocol one
// consumer at a time while records flow: for each, a group.protocol=consumer consumer joins
// (the first one's join upgrades the classic group online to a consumer group whose classic
// members keep using JoinGroup/SyncGroup/Heartbeat), the group settles with both, then the
// classic consumer it replaces closes and the group settles without it. Asserted: the group's
// type at each step (classic before, consumer from the first join on, with member types 0
// and 1 as the members use each protocol), each consumer's view of its assignment is what
// the broker assigned, no partition owned by two consumers at once (the rebalance
// callbacks' order), every record processed exactly once with its value, a redelivery only
// of a record whose commit failed, every consumer processed records, and the committed
// offsets are the log ends.
func TestConfluentConsumerGroup848RollingUpgrade(t *testing.T) {
	for _, strategy := range []string{"range", "cooperative-sticky"} {
		t.Run(strategy, func(t *testing.T) {
			start := time.Now()
			tb := startGroupBroker848(t)
			adm := groupAdmin(t, tb.addr)
			const topic, group, parts = "confluent848-upgrade", "confluent848-upgrade-consumers", int32(6)
			groupCreateTopic(t, adm, topic, parts)
			const perPartition = 100
			total := perPartition * int(parts)

			l := newGroupLedger(parts)
			own := newOwnershipLog()
			live := map[string]*confluentMember{}
			types := map[string]int8{}
			var all []string
			names := func() []string {
				var ns []string
				for n := range live {
					ns = append(ns, n)
				}
				sort.Strings(ns)
				return ns
			}
			members := func() []*confluentMember {
				var out []*confluentMember
				for _, n := range names() {
					out = append(out, live[n])
				}
				return out
			}
			settle := func(wantType string) map[int32]string {
				t.Helper()
				owners, typ := mixedGroupOwners(t, adm, group, topic, parts, names()...)
				if typ != wantType {
					t.Fatalf("group of type %s, want %s", typ, wantType)
				}
				eventually(t, "consumers own what the broker assigned", func() error { return confluentOwnersAgree(owners, members()) })
				count := map[string]int{}
				for _, o := range owners {
					count[o]++
				}
				for _, n := range names() {
					if count[n] == 0 {
						t.Fatalf("owners %v: %s owns no partition", owners, n)
					}
				}
				if wantType == "consumer" {
					checkConsumerGroupType(t, adm, group, types)
				} else if typ := groupTypeOf(t, adm, group); typ != "classic" {
					t.Fatalf("ListGroups: type %q, want classic", typ)
				}
				return owners
			}

			for i := 0; i < 3; i++ {
				name := fmt.Sprintf("confluent848-%s-classic-%d", strategy, i)
				live[name], types[name] = startConfluentMemberWith(t, tb.addr, group, topic, name, confluentClassicConf(strategy), l, 0, own.note), 0
				all = append(all, name)
			}
			settle("classic")
			rebalances := groupRebalances(tb)

			// The stream is released a fifth at a time: each step happens while records flow.
			s := startGroupStream(t, tb.addr, topic, parts, 0, total, total*2/5, 20*time.Millisecond)
			var steps []string
			for i := 0; i < 3; i++ {
				s.waitProduced(t, total*(i+1)/5)
				at := s.produced.Load()
				old := fmt.Sprintf("confluent848-%s-classic-%d", strategy, i)
				name := fmt.Sprintf("confluent848-%s-consumer-%d", strategy, i)
				live[name], types[name] = startConfluentMemberWith(t, tb.addr, group, topic, name, confluent848Conf(""), l, 0, own.note), 1
				all = append(all, name)
				settle("consumer")
				live[old].close()
				delete(live, old)
				delete(types, old)
				settle("consumer")
				steps = append(steps, fmt.Sprintf("%s replaced %s at %d-%d produced", name, old, at, s.produced.Load()))
				s.limit.Store(int64(total * (i + 3) / 5))
			}
			s.limit.Store(int64(total))
			s.finish(t)
			l.waitProcessed(t, total, 30*time.Second)
			time.Sleep(300 * time.Millisecond) // a duplicate would arrive now
			d, f, twice := l.check(t, 0, perPartition, nil)
			if d-total != f || twice != 0 {
				t.Fatalf("%d redeliveries: %d after a failed commit, %d records processed twice", d-total, f, twice)
			}
			var by []string
			for _, n := range all {
				p := l.processedBy(n)
				if p == 0 {
					t.Errorf("%s processed no record", n)
				}
				by = append(by, fmt.Sprintf("%s %d", n, p))
			}
			groupCheckCommitted(t, adm, group, topic, parts, perPartition)
			own.check(t)
			t.Logf("%s; %d records processed once each (%s), %d redelivered after a failed commit, %d rebalances, in %v",
				strings.Join(steps, "; "), total, strings.Join(by, ", "), f, groupRebalances(tb)-rebalances, time.Since(start))
		})
	}
}
