package controller

import (
	"fmt"
	"slices"
)

// Replica placement for new partitions, as Kafka's assignReplicasToBrokers: partitions'
// first replicas go round robin over the brokers from a random start, and each partition's
// followers sit at an offset from its first replica that shifts by one every time the
// round robin wraps, so replicas spread evenly and no two brokers always follow each other.
//
// When any broker has a rack, the brokers are first ordered alternating racks (a1, b1, c1,
// a2, b2, …) and a follower is skipped while it would put a second replica on a rack before
// every rack has one: each partition's replicas land on distinct racks whenever there are
// at least as many racks as replicas. Brokers without a rack form one rack of their own.
//
// Only unfenced brokers are placed on, so new partitions start with ISR = replicas and
// leader = first replica.

type placementError struct{ msg string }

func (e *placementError) Error() string { return e.msg }

// placeReplicas returns count replica lists of rf brokers each for partitions
// start..start+count-1.
func placeReplicas(img *Image, start, count int32, rf int16, rnd intner) ([][]int32, error) {
	var brokers []*BrokerInfo
	for _, b := range img.Brokers() {
		if !b.Fenced {
			brokers = append(brokers, b)
		}
	}
	switch {
	case rf <= 0:
		return nil, &placementError{"Replication factor must be larger than 0."}
	case len(brokers) == 0:
		return nil, &placementError{"All brokers are currently fenced."}
	case int(rf) > len(brokers):
		return nil, &placementError{fmt.Sprintf("The target replication factor of %d cannot be reached because only %d broker(s) are registered.", rf, len(brokers))}
	}
	racked := slices.ContainsFunc(brokers, func(b *BrokerInfo) bool { return b.Rack != nil })
	ids, racks := rackAlternated(brokers, racked)
	n := len(ids)
	startIndex, shift := rnd.IntN(n), rnd.IntN(n)
	numRacks := 1
	if racked {
		numRacks = len(distinct(racks))
	}
	out := make([][]int32, 0, count)
	for p := start; p < start+count; p++ {
		if p > 0 && int(p)%n == 0 {
			shift++
		}
		first := (int(p) + startIndex) % n
		replicas := []int32{ids[first]}
		usedRacks := map[string]bool{racks[first]: true}
		for k := 0; len(replicas) < int(rf); k++ {
			if k > n*n {
				panic("BUG: replica placement found no broker")
			}
			i := replicaIndex(first, shift*numRacks, k, n)
			if contains(replicas, ids[i]) || (usedRacks[racks[i]] && len(usedRacks) < numRacks) {
				continue
			}
			replicas = append(replicas, ids[i])
			usedRacks[racks[i]] = true
		}
		out = append(out, replicas)
	}
	return out, nil
}

// replicaIndex is the position of the j-th follower candidate of the replica at first.
func replicaIndex(first, shift, j, n int) int {
	if n == 1 {
		return first
	}
	return (first + 1 + (shift+j)%(n-1)) % n
}

// rackAlternated orders brokers by id, or, when racked, interleaves the racks (sorted by
// name) taking their brokers in id order. It returns the ids and each one's rack.
func rackAlternated(brokers []*BrokerInfo, racked bool) (ids []int32, racks []string) {
	rackOf := func(b *BrokerInfo) string {
		if b.Rack == nil {
			return "\x00" // no rack: a rack of its own, sorted first
		}
		return *b.Rack
	}
	if !racked {
		for _, b := range brokers {
			ids, racks = append(ids, b.ID), append(racks, "")
		}
		return ids, racks
	}
	byRack := map[string][]int32{}
	for _, b := range brokers { // brokers are in id order
		byRack[rackOf(b)] = append(byRack[rackOf(b)], b.ID)
	}
	names := make([]string, 0, len(byRack))
	for r := range byRack {
		names = append(names, r)
	}
	slices.Sort(names)
	for i := 0; len(ids) < len(brokers); i++ {
		for _, r := range names {
			if i < len(byRack[r]) {
				ids, racks = append(ids, byRack[r][i]), append(racks, r)
			}
		}
	}
	return ids, racks
}

func distinct(v []string) map[string]bool {
	m := map[string]bool{}
	for _, s := range v {
		m[s] = true
	}
	return m
}
