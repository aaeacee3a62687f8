package txn

import (
	"testing"
)

// FuzzLoadRecord feeds arbitrary keys and values to the decoder of __transaction_state
// records. It must not panic; a record it accepts must encode (as Kafka's v0) and decode back
// to the same state.
func FuzzLoadRecord(f *testing.F) {
	ongoing := &meta{producerID: 9, producerEpoch: 4, timeoutMs: 1000, state: PrepareCommit, startMs: 5, updateMs: 6,
		partitions: map[TopicPartition]struct{}{{"t", 0}: {}, {"t", 2}: {}, {"u", 1}: {}}}
	empty := &meta{producerID: 9, producerEpoch: 5, timeoutMs: 1000, state: Empty, startMs: -1, updateMs: 7}
	done := &meta{producerID: 9, producerEpoch: 5, timeoutMs: 1000, state: CompleteAbort, startMs: 5, updateMs: 8}
	for _, m := range []*meta{ongoing, empty, done} {
		v := stateValue(m)
		f.Add(stateKey("id"), v, false)
		f.Add(stateKey("id"), v[:len(v)-3], false)
	}
	f.Add(stateKey("gone"), []byte(nil), true)
	f.Add([]byte{0, 1, 0, 2, 'i', 'd'}, []byte{0, 0}, false)
	f.Add([]byte{0}, []byte{}, false)
	f.Fuzz(func(t *testing.T, key, value []byte, null bool) {
		if null {
			value = nil
		} else if value == nil {
			value = []byte{}
		}
		id, m, err := decodeRecord(key, value)
		if err != nil {
			if m != nil {
				t.Fatalf("error %v with metadata", err)
			}
			return
		}
		if m == nil {
			if value != nil {
				t.Fatal("a value decoded as a tombstone")
			}
			return
		}
		id2, m2, err := decodeRecord(stateKey(id), stateValue(m))
		if err != nil || id2 != id {
			t.Fatalf("re-decode: %q %v", id2, err)
		}
		if m.producerID != m2.producerID || m.producerEpoch != m2.producerEpoch || m.timeoutMs != m2.timeoutMs ||
			m.state != m2.state || m.startMs != m2.startMs || m.updateMs != m2.updateMs || len(m.partitions) != len(m2.partitions) {
			t.Fatalf("round trip: %+v != %+v", m, m2)
		}
		for tp := range m.partitions {
			if _, ok := m2.partitions[tp]; !ok {
				t.Fatalf("round trip lost %v", tp)
			}
		}
	})
}
