package coordinator

import (
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"
)

func tid(name string) [16]byte {
	var id [16]byte
	copy(id[:], name)
	return id
}

func testTopics(spec map[string]int32) map[[16]byte]assignTopic {
	out := map[[16]byte]assignTopic{}
	for n, p := range spec {
		out[tid(n)] = assignTopic{id: tid(n), name: n, partitions: p}
	}
	return out
}

func subscribe(names ...string) map[[16]byte]bool {
	out := map[[16]byte]bool{}
	for _, n := range names {
		out[tid(n)] = true
	}
	return out
}

// render shows an assignment as member: topic-partition lists, sorted.
func render(a map[string]partSet, topics map[[16]byte]assignTopic) string {
	var ids []string
	for id := range a {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var b strings.Builder
	for _, id := range ids {
		var ps []string
		for _, ip := range sortedParts(a[id], topics) {
			ps = append(ps, fmt.Sprintf("%s%d", topics[ip.id].name, ip.p))
		}
		fmt.Fprintf(&b, "%s:%s ", id, strings.Join(ps, ","))
	}
	return strings.TrimSpace(b.String())
}

// checkComplete fails unless every partition of a topic someone subscribes to is assigned to
// exactly one member subscribed to it.
func checkComplete(t *testing.T, ms []assignMember, topics map[[16]byte]assignTopic, a map[string]partSet) {
	t.Helper()
	owner := map[idPart]string{}
	for _, m := range ms {
		for ip := range a[m.id] {
			if !m.topics[ip.id] {
				t.Fatalf("%s got %v of a topic it does not subscribe to", m.id, ip)
			}
			if o, ok := owner[ip]; ok {
				t.Fatalf("%v assigned to %s and %s", ip, o, m.id)
			}
			owner[ip] = m.id
		}
	}
	for id, tp := range topics {
		subscribed := false
		for _, m := range ms {
			subscribed = subscribed || m.topics[id]
		}
		for p := int32(0); p < tp.partitions; p++ {
			if _, ok := owner[idPart{id, p}]; subscribed && !ok {
				t.Fatalf("%s-%d not assigned", tp.name, p)
			}
		}
	}
}

func counts(ms []assignMember, a map[string]partSet) (lo, hi int) {
	lo = 1 << 30
	for _, m := range ms {
		n := len(a[m.id])
		lo, hi = min(lo, n), max(hi, n)
	}
	return lo, hi
}

// TestUniformAssignorBalancesWithinOne: with the same subscriptions, member counts differ by
// at most one, whatever the numbers of members, topics and partitions.
func TestUniformAssignorBalancesWithinOne(t *testing.T) {
	for _, tc := range []struct {
		members int
		topics  map[string]int32
	}{
		{1, map[string]int32{"a": 3}},
		{3, map[string]int32{"a": 6}},
		{4, map[string]int32{"a": 6}},
		{7, map[string]int32{"a": 3}},
		{3, map[string]int32{"a": 1, "b": 1, "c": 1, "d": 1}},
		{5, map[string]int32{"a": 7, "b": 11, "c": 2}},
		{8, map[string]int32{"a": 100}},
		{16, map[string]int32{"a": 1000, "b": 33}},
	} {
		topics := testTopics(tc.topics)
		var names []string
		total := 0
		for n, p := range tc.topics {
			names = append(names, n)
			total += int(p)
		}
		var ms []assignMember
		for i := 0; i < tc.members; i++ {
			ms = append(ms, assignMember{id: fmt.Sprintf("m%02d", i), topics: subscribe(names...)})
		}
		a := uniformAssignor{}.assign(ms, topics)
		checkComplete(t, ms, topics, a)
		if lo, hi := counts(ms, a); hi-lo > 1 || lo != total/tc.members {
			t.Fatalf("%d members over %v: counts %d..%d: %s", tc.members, tc.topics, lo, hi, render(a, topics))
		}
		// Same input, same output.
		if b := (uniformAssignor{}).assign(ms, topics); render(a, topics) != render(b, topics) {
			t.Fatalf("not deterministic")
		}
	}
}

// TestUniformAssignorIsSticky: members keep their partitions when others join or leave, except
// what balance needs to move; a partition moves at most once per change.
func TestUniformAssignorIsSticky(t *testing.T) {
	topics := testTopics(map[string]int32{"a": 12, "b": 6})
	sub := subscribe("a", "b")
	ms := []assignMember{{id: "m1", topics: sub}, {id: "m2", topics: sub}, {id: "m3", topics: sub}}
	prev := uniformAssignor{}.assign(ms, topics)
	step := func(ms []assignMember, wantMoved int) map[string]partSet {
		t.Helper()
		for i := range ms {
			ms[i].current = prev[ms[i].id]
		}
		next := uniformAssignor{}.assign(ms, topics)
		checkComplete(t, ms, topics, next)
		if lo, hi := counts(ms, next); hi-lo > 1 {
			t.Fatalf("unbalanced: %s", render(next, topics))
		}
		moved := 0
		for _, m := range ms {
			for ip := range next[m.id] {
				if !prev[m.id].has(ip) {
					moved++
				}
			}
		}
		if moved != wantMoved {
			t.Fatalf("%d partitions moved, want %d:\n%s\n%s", moved, wantMoved, render(prev, topics), render(next, topics))
		}
		prev = next
		return next
	}
	step(ms, 0)                                                                               // nothing changed
	ms = append(ms, assignMember{id: "m4", topics: sub})                                      // 18/4: 4 or 5 each
	step(ms, 4)                                                                               // the new member's share, nothing else
	ms = append(ms[:1], ms[2:]...)                                                            // m2 leaves
	step(ms, 5)                                                                               // m2's share spread
	ms = append(ms, assignMember{id: "m5", topics: sub}, assignMember{id: "m6", topics: sub}) // 18/5
	step(ms, 6)                                                                               // 3+3 for the newcomers
}

// TestUniformAssignorDifferentSubscriptions: with different subscriptions every partition goes
// to a subscriber, and no partition could move to a subscriber holding two fewer.
func TestUniformAssignorDifferentSubscriptions(t *testing.T) {
	rnd := rand.New(rand.NewSource(1))
	for round := 0; round < 200; round++ {
		spec := map[string]int32{}
		var names []string
		for i := 0; i < 1+rnd.Intn(5); i++ {
			n := string(rune('a' + i))
			spec[n] = int32(1 + rnd.Intn(9))
			names = append(names, n)
		}
		topics := testTopics(spec)
		var ms []assignMember
		for i := 0; i < 1+rnd.Intn(6); i++ {
			var sub []string
			for _, n := range names {
				if rnd.Intn(2) == 0 {
					sub = append(sub, n)
				}
			}
			ms = append(ms, assignMember{id: fmt.Sprintf("m%d", i), topics: subscribe(sub...)})
		}
		a := uniformAssignor{}.assign(ms, topics)
		checkComplete(t, ms, topics, a)
		for _, m := range ms {
			for ip := range a[m.id] {
				for _, o := range ms {
					if o.topics[ip.id] && len(a[o.id]) <= len(a[m.id])-2 {
						t.Fatalf("round %d: %v of %s could move to %s: %s", round, ip, m.id, o.id, render(a, topics))
					}
				}
			}
		}
		// A second run from this assignment keeps it.
		for i := range ms {
			ms[i].current = a[ms[i].id]
		}
		if b := (uniformAssignor{}).assign(ms, topics); render(a, topics) != render(b, topics) {
			t.Fatalf("round %d: not stable:\n%s\n%s", round, render(a, topics), render(b, topics))
		}
	}
	// A classic case: one member subscribes to a, the others to a and b.
	topics := testTopics(map[string]int32{"a": 3, "b": 3})
	ms := []assignMember{{id: "x", topics: subscribe("a")}, {id: "y", topics: subscribe("a", "b")}, {id: "z", topics: subscribe("a", "b")}}
	a := uniformAssignor{}.assign(ms, topics)
	if lo, hi := counts(ms, a); lo != 2 || hi != 2 || len(a["x"]) != 2 {
		t.Fatalf("mixed: %s", render(a, topics))
	}
}

// TestRangeAssignorPerTopic: each topic is split in contiguous ranges over its subscribers in
// order (static members by instance id first), the first ones getting one more — Kafka's range.
func TestRangeAssignorPerTopic(t *testing.T) {
	topics := testTopics(map[string]int32{"a": 7, "b": 2, "c": 4})
	inst := func(s string) *string { return &s }
	ms := []assignMember{
		{id: "m3", topics: subscribe("a", "b", "c")},
		{id: "m1", topics: subscribe("a", "b")},
		{id: "m2", topics: subscribe("a", "c")},
		{id: "zz", instanceID: inst("i1"), topics: subscribe("a")},
	}
	a := rangeAssignor{}.assign(ms, topics)
	checkComplete(t, ms, topics, a)
	// a: zz (static) first, then m1, m2, m3: 7 = 2+2+2+1.
	want := "m1:a2,a3,b0 m2:a4,a5,c0,c1 m3:a6,b1,c2,c3 zz:a0,a1"
	if got := render(a, topics); got != want {
		t.Fatalf("range:\n got %s\nwant %s", got, want)
	}
	// Same subscriptions: co-partitioned topics give each member the same partition numbers.
	topics = testTopics(map[string]int32{"x": 6, "y": 6})
	ms = []assignMember{{id: "b", topics: subscribe("x", "y")}, {id: "a", topics: subscribe("x", "y")}, {id: "c", topics: subscribe("x", "y")}}
	if got := render(rangeAssignor{}.assign(ms, topics), topics); got != "a:x0,x1,y0,y1 b:x2,x3,y2,y3 c:x4,x5,y4,y5" {
		t.Fatalf("co-partitioned: %s", got)
	}
	// More members than partitions: the last ones get nothing.
	topics = testTopics(map[string]int32{"x": 2})
	ms = []assignMember{{id: "a", topics: subscribe("x")}, {id: "b", topics: subscribe("x")}, {id: "c", topics: subscribe("x")}}
	if got := render(rangeAssignor{}.assign(ms, topics), topics); got != "a:x0 b:x1 c:" {
		t.Fatalf("more members than partitions: %s", got)
	}
}
