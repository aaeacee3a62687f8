package txn

import (
	"math"
	"sort"
	"sync"
	"sync/atomic"
)

// State is a transaction's state; the values are Kafka's TransactionState ids, as stored in
// __transaction_state.
type State int8

// Kafka's transaction states.
const (
	Empty State = iota
	Ongoing
	PrepareCommit
	PrepareAbort
	CompleteCommit
	CompleteAbort
	Dead
	PrepareEpochFence
	numStates
)

var stateNames = [numStates]string{
	"Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort", "Dead", "PrepareEpochFence",
}

// String is the state's name as Kafka prints it (DescribeTransactions, ListTransactions).
func (s State) String() string {
	if s < 0 || s >= numStates {
		return "Unknown"
	}
	return stateNames[s]
}

// stateByName parses a state name exactly as Kafka's TransactionState.fromName does.
func stateByName(name string) (State, bool) {
	for s, n := range stateNames {
		if n == name {
			return State(s), true
		}
	}
	return 0, false
}

func (s State) preparing() bool { return s == PrepareCommit || s == PrepareAbort }

// expirable is Kafka's TransactionState.isExpirationAllowed: no transaction is running.
func (s State) expirable() bool { return s == Empty || s == CompleteCommit || s == CompleteAbort }

// Epochs and ids Kafka uses for "none".
const (
	noProducerID    int64 = -1
	noProducerEpoch int16 = -1
)

// epochExhausted is TransactionMetadata.isEpochExhausted: one epoch is kept for fencing, so
// an InitProducerId at epoch 32766 or more gets a new producer id instead of a bump.
func epochExhausted(epoch int16) bool { return epoch >= math.MaxInt16-1 }

// meta is what one record of __transaction_state says about a transactional id, plus the
// previous producer id and epoch that KIP-360 retries are checked against (kept in memory
// only, as in Kafka).
type meta struct {
	producerID        int64
	lastProducerID    int64 // the producer id before the last InitProducerId
	producerEpoch     int16
	lastProducerEpoch int16 // -1 unless the last InitProducerId was a KIP-360 bump or rotation
	timeoutMs         int32
	state             State
	// Invariant: empty unless Ongoing or Prepare*. Never modified in place (copy on write), so
	// a reader holding Coordinator.mu may keep using the map it saw.
	partitions map[TopicPartition]struct{}
	startMs    int64 // when the running (or last) transaction began; -1 before the first
	updateMs   int64 // last change
}

// txn is one transactional id.
type txn struct {
	id        string
	partition int32 // of __transaction_state

	// coordEpoch is the coordinator epoch of its markers: the leader epoch of its partition
	// when this coordinator was elected for it (0 without Config.PartitionOwnership); stop is
	// closed when that election ends (nil without). Both are fixed at creation.
	coordEpoch int32
	stop       <-chan struct{}
	// gone is set, with Coordinator.mu held for writing, when the txn leaves the map because
	// its partition is no longer served here (OnResignation): lockTxn skips it, nothing more
	// is appended for it, and its markers' completion stops.
	gone atomic.Bool

	// mu serializes the changes of this id and is held across the append of their record,
	// never across WriteMarkers.
	mu sync.Mutex

	// Written with mu and Coordinator.mu (write) held; read with either held.
	// Invariant: state is never PrepareEpochFence; Dead only once the txn left the map.
	meta
}

// sortedPartitions returns the partitions ordered by topic, then partition.
func sortedPartitions(set map[TopicPartition]struct{}) []TopicPartition {
	out := make([]TopicPartition, 0, len(set))
	for tp := range set {
		out = append(out, tp)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// withPartitions returns a new set holding set and added.
func withPartitions(set map[TopicPartition]struct{}, added []TopicPartition) map[TopicPartition]struct{} {
	out := make(map[TopicPartition]struct{}, len(set)+len(added))
	for tp := range set {
		out[tp] = struct{}{}
	}
	for _, tp := range added {
		out[tp] = struct{}{}
	}
	return out
}

// containsAll reports whether every partition of tps is in set.
func containsAll(set map[TopicPartition]struct{}, tps []TopicPartition) bool {
	for _, tp := range tps {
		if _, ok := set[tp]; !ok {
			return false
		}
	}
	return true
}
