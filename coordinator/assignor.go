package coordinator

import "sort"

// Server-side assignors of consumer groups (KIP-848), chosen by name (the ServerAssignor a
// member asks for; group.consumer.assignors). Both are deterministic: the same members, topics
// and previous target always give the same assignment.
//
//   - "uniform" (default): every partition of the topics a member subscribes to goes to one
//     member, as evenly as the subscriptions allow — with the same subscriptions, member
//     counts differ by at most one — and sticky: a member keeps what its previous target gave it
//     unless balance needs it elsewhere. Where subscriptions differ, no partition can move to
//     an eligible member holding two or more fewer partitions (Kafka's balance condition of
//     its general uniform builder). Racks are not considered.
//   - "range": per topic, the members subscribed to it in order (static members by instance
//     id first, then the others by member id) get contiguous ranges, the first
//     partitions%members members one more — Kafka's RangeAssignor. Not sticky.

// assignMember is a member as an assignor sees it.
type assignMember struct {
	id         string
	instanceID *string
	topics     map[[16]byte]bool // subscribed topics that exist
	current    partSet           // the previous target assignment
}

// assignTopic is a subscribed topic.
type assignTopic struct {
	id         [16]byte
	name       string
	partitions int32
}

type serverAssignor interface {
	assign(members []assignMember, topics map[[16]byte]assignTopic) map[string]partSet
}

func assignorByName(name string) serverAssignor {
	if name == "range" {
		return rangeAssignor{}
	}
	return uniformAssignor{}
}

type uniformAssignor struct{}

func (uniformAssignor) assign(ms []assignMember, topics map[[16]byte]assignTopic) map[string]partSet {
	ms = sortedAssignMembers(ms, false)
	out := make(map[string]partSet, len(ms))
	count := make([]int, len(ms))
	eligible := map[[16]byte][]int{} // topic → members subscribed, in order
	for i, m := range ms {
		out[m.id] = partSet{}
		for tid := range m.topics {
			if _, ok := topics[tid]; ok {
				eligible[tid] = append(eligible[tid], i)
			}
		}
	}
	for tid := range eligible {
		sort.Ints(eligible[tid])
	}
	owner := map[idPart]int{}
	// What members keep from their previous target.
	for i, m := range ms {
		for _, ip := range sortedParts(m.current, topics) {
			t, ok := topics[ip.id]
			if _, taken := owner[ip]; !ok || taken || ip.p < 0 || ip.p >= t.partitions || !m.topics[ip.id] {
				continue
			}
			owner[ip] = i
			out[m.id][ip] = struct{}{}
			count[i]++
		}
	}
	// The others, the partitions with fewest candidates first, each to its least loaded
	// candidate.
	var free []idPart
	for tid, t := range topics {
		if len(eligible[tid]) == 0 {
			continue
		}
		for p := int32(0); p < t.partitions; p++ {
			if _, ok := owner[idPart{tid, p}]; !ok {
				free = append(free, idPart{tid, p})
			}
		}
	}
	sort.Slice(free, func(i, j int) bool {
		a, b := free[i], free[j]
		if na, nb := len(eligible[a.id]), len(eligible[b.id]); na != nb {
			return na < nb
		}
		if ta, tb := topics[a.id].name, topics[b.id].name; ta != tb {
			return ta < tb
		}
		return a.p < b.p
	})
	least := func(cands []int) int {
		best := cands[0]
		for _, i := range cands[1:] {
			if count[i] < count[best] {
				best = i
			}
		}
		return best
	}
	for _, ip := range free {
		i := least(eligible[ip.id])
		owner[ip] = i
		out[ms[i].id][ip] = struct{}{}
		count[i]++
	}
	// Balance: move a partition from a member to a candidate with two or fewer less, from the
	// most loaded first, until none can move. Each move lowers the sum of squared counts.
	order := make([]int, len(ms))
	for i := range order {
		order[i] = i
	}
	for moved := true; moved; {
		moved = false
		sort.SliceStable(order, func(a, b int) bool { return count[order[a]] > count[order[b]] })
		for _, i := range order {
			if count[i] < 2 {
				break
			}
			// Partitions new to the member go first: moving them keeps the others sticky.
			ps := sortedParts(out[ms[i].id], topics)
			prev := ms[i].current
			sort.SliceStable(ps, func(a, b int) bool { return !prev.has(ps[a]) && prev.has(ps[b]) })
			for _, ip := range ps {
				if j := least(eligible[ip.id]); count[j] <= count[i]-2 {
					delete(out[ms[i].id], ip)
					out[ms[j].id][ip] = struct{}{}
					count[i]--
					count[j]++
					moved = true
					break
				}
			}
			if moved {
				break
			}
		}
	}
	return out
}

type rangeAssignor struct{}

func (rangeAssignor) assign(ms []assignMember, topics map[[16]byte]assignTopic) map[string]partSet {
	ms = sortedAssignMembers(ms, true)
	out := make(map[string]partSet, len(ms))
	for _, m := range ms {
		out[m.id] = partSet{}
	}
	ts := make([]assignTopic, 0, len(topics))
	for _, t := range topics {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].name < ts[j].name })
	for _, t := range ts {
		var subs []assignMember
		for _, m := range ms {
			if m.topics[t.id] {
				subs = append(subs, m)
			}
		}
		if len(subs) == 0 {
			continue
		}
		n, extra := int(t.partitions)/len(subs), int(t.partitions)%len(subs)
		p := int32(0)
		for i, m := range subs {
			k := n
			if i < extra {
				k++
			}
			for ; k > 0; k-- {
				out[m.id][idPart{t.id, p}] = struct{}{}
				p++
			}
		}
	}
	return out
}

// sortedAssignMembers orders members by member id, or (static) for range: static members by
// instance id, then the others by member id (Kafka's MemberInfo order).
func sortedAssignMembers(ms []assignMember, staticFirst bool) []assignMember {
	out := append([]assignMember(nil), ms...)
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if staticFirst {
			switch {
			case a.instanceID != nil && b.instanceID != nil && *a.instanceID != *b.instanceID:
				return *a.instanceID < *b.instanceID
			case a.instanceID != nil && b.instanceID == nil:
				return true
			case a.instanceID == nil && b.instanceID != nil:
				return false
			}
		}
		return a.id < b.id
	})
	return out
}

// sortedParts returns a set's partitions by topic name and partition.
func sortedParts(s partSet, topics map[[16]byte]assignTopic) []idPart {
	out := make([]idPart, 0, len(s))
	for ip := range s {
		out = append(out, ip)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.id != b.id {
			ta, tb := topics[a.id].name, topics[b.id].name
			if ta != tb {
				return ta < tb
			}
			return string(a.id[:]) < string(b.id[:])
		}
		return a.p < b.p
	})
	return out
}
