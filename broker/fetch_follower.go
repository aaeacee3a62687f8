package broker

// Fetching from the closest replica (KIP-392), in cluster mode.
//
// Followers serve consumers: a Fetch v11+ from a consumer (replica id -1) with
// isolation_level read_uncommitted is answered by a follower as by a leader, up to the
// follower's high watermark (which only moves forward and is never above the leader's, so
// what it returns is committed and never truncated). Older versions and read_committed
// fetches get NOT_LEADER_OR_FOLLOWER there: followers keep no transaction state, so they
// know no last stable offset.
//
// Leaders pick a preferred read replica when Config.ReplicaSelector is ReplicaSelectorRack
// (replica.selector.class = Kafka's RackAwareReplicaSelector): for a consumer's
// read_uncommitted Fetch v11+ that names a rack (client.rack), when the leader's broker is
// not in that rack, the in-sync follower in it that is registered, unfenced and holds the
// fetch offset (its last fetch reached it) — the most caught-up one — is named in
// preferred_read_replica and the partition is answered at once with no records, as
// ReplicaManager.findPreferredReadReplica does; the consumer then fetches from it. With no
// such follower the leader serves the fetch.

import "github.com/spate-broker/spate/controller"

// ReplicaSelectorRack is Config.ReplicaSelector for Kafka's RackAwareReplicaSelector.
const ReplicaSelectorRack = "rack"

// rackAwareSelectorClass is replica.selector.class's value for ReplicaSelectorRack.
const rackAwareSelectorClass = "org.apache.kafka.common.replica.RackAwareReplicaSelector"

// followerRead reports whether a fetch may be served by a follower (see the file comment).
func (st *fetchState) followerRead() bool {
	return st.req.ReplicaID < 0 && st.h.version >= 11 && st.req.IsolationLevel == 0
}

// preferredReadReplica is the replica a consumer in rack should fetch from at fetchOffset, or
// -1 for this leader. Leader only.
func (p *partition) preferredReadReplica(rack []byte, fetchOffset int64) int32 {
	c := p.b.cluster
	ls := p.repl.leader.Load()
	if c == nil || ls == nil || len(rack) == 0 {
		return -1
	}
	img := c.ctl.Image()
	if inRack(img, c.self, rack) {
		return -1
	}
	best, bestLEO := int32(-1), int64(-1)
	p.repl.mu.Lock()
	defer p.repl.mu.Unlock()
	for _, id := range p.repl.isr {
		if id == c.self || !inRack(img, id, rack) {
			continue
		}
		f, ok := ls.Follower(id)
		if !ok || !f.InISR || f.LogEndOffset < fetchOffset || fetchOffset < p.log.LogStartOffset() {
			continue
		}
		if f.LogEndOffset > bestLEO {
			best, bestLEO = id, f.LogEndOffset
		}
	}
	return best
}

// inRack reports whether broker id is registered, unfenced and in rack.
func inRack(img *controller.Image, id int32, rack []byte) bool {
	bi := img.Broker(id)
	return bi != nil && !bi.Fenced && bi.Rack != nil && *bi.Rack == string(rack)
}
