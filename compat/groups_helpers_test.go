package compat

// Helpers the group tests of every client share, beside the ledger of groups_kafkago_test.go:
// the broker and topic a test's group runs on, waiting for a group to settle with the members
// named, and the stable-membership phase.

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/spate-broker/spate/broker"
)

// groupTimers sets group timers that suit tests: group.initial.rebalance.delay of 100 ms and a
// low minimum session timeout.
func groupTimers(c *broker.Config) {
	c.Groups.InitialRebalanceDelay = 100 * time.Millisecond
	c.Groups.MinSessionTimeout = 100 * time.Millisecond
}

// groupTopic is a broker, an admin client of it, and the topic of partitions a test's group
// consumes.
type groupTopic struct {
	tb           *testBroker
	adm          *kadm.Client
	topic, group string
	partitions   int32
}

// newGroupTopic creates topic on tb, with an admin client closed with the test.
func newGroupTopic(t *testing.T, tb *testBroker, topic, group string, partitions int32) groupTopic {
	t.Helper()
	adm := groupAdmin(t, tb.addr)
	groupCreateTopic(t, adm, topic, partitions)
	return groupTopic{tb: tb, adm: adm, topic: topic, group: group, partitions: partitions}
}

// waitGroupSettled calls describe every 50 ms, for up to timeout, until it returns the owners
// of a settled group (why empty) — describe returns why not, or an error.
func waitGroupSettled(t *testing.T, timeout time.Duration, group string, members []string, describe func(ctx context.Context) (owners map[int32]string, why string, err error)) map[int32]string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		owners, why, err := describe(ctx)
		cancel()
		if err != nil {
			last = err.Error()
		} else if why != "" {
			last = why
		} else {
			return owners
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("group %s did not settle with members %v: %s", group, members, last)
	return nil
}

// memberAssignment is a described member: its client id and the partitions assigned to it, by
// topic.
type memberAssignment struct {
	client string
	topics map[string][]int32
}

// assignmentCoverage checks a described group's members: exactly the members named (by client
// id), every partition of topic owned by exactly one of them, no other topic. It returns the
// owners, or why not.
func assignmentCoverage(ms []memberAssignment, topic string, partitions int32, members []string) (map[int32]string, string) {
	var clients []string
	for _, m := range ms {
		clients = append(clients, m.client)
	}
	sort.Strings(clients)
	want := append([]string(nil), members...)
	sort.Strings(want)
	if strings.Join(clients, ",") != strings.Join(want, ",") {
		return nil, fmt.Sprintf("members %v", clients)
	}
	owners := map[int32]string{}
	for _, m := range ms {
		for tn, ps := range m.topics {
			if tn != topic {
				return nil, fmt.Sprintf("member %s assigned topic %s", m.client, tn)
			}
			for _, p := range ps {
				if o, dup := owners[p]; dup {
					return nil, fmt.Sprintf("partition %d assigned to %s and %s", p, o, m.client)
				}
				owners[p] = m.client
			}
		}
	}
	if len(owners) != int(partitions) {
		return nil, fmt.Sprintf("%d of %d partitions assigned", len(owners), partitions)
	}
	return owners, ""
}

// checkOwnsEach asserts that each member named owns want of the partitions in owners.
func checkOwnsEach(t *testing.T, owners map[int32]string, want int, members ...string) {
	t.Helper()
	count := map[string]int{}
	for _, o := range owners {
		count[o]++
	}
	for _, m := range members {
		if count[m] != want {
			t.Fatalf("owners %v: %s owns %d partitions, want %d", owners, m, count[m], want)
		}
	}
}

// checkStable produces 100 records a partition (groupProduce's 0 to 100×partitions-1) to a
// group whose members settled with owners, and asserts what stable membership promises: no
// rebalance while they are processed (stable, when set, asserts more at that point), each
// record delivered exactly once, with its value, to its partition's owner, and processed, and
// the committed offsets at 100, the log ends.
func (g groupTopic) checkStable(t *testing.T, l *groupLedger, owners map[int32]string, stable func()) {
	t.Helper()
	const perPartition = 100
	total := perPartition * int(g.partitions)
	rebalances := groupRebalances(g.tb)
	groupProduce(t, g.tb.addr, g.topic, g.partitions, 0, total)
	l.waitProcessed(t, total, 45*time.Second)
	time.Sleep(300 * time.Millisecond) // a duplicate would arrive now
	if n := groupRebalances(g.tb) - rebalances; n != 0 {
		t.Fatalf("%d rebalances (new target assignments) while membership was stable", n)
	}
	if stable != nil {
		stable()
	}
	if d, f, twice := l.check(t, 0, perPartition, owners); d != total || f != 0 || twice != 0 {
		t.Fatalf("stable group: %d deliveries, %d failed commits, %d records processed twice; want %d, 0, 0", d, f, twice, total)
	}
	groupCheckCommitted(t, g.adm, g.group, g.topic, g.partitions, perPartition)
}
