package controller

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"runtime"
	"testing"
)

func sampleRecords() []Record {
	return []Record{
		&RegisterBrokerRecord{BrokerID: 1, IncarnationID: [16]byte{1, 2, 3}, Rack: strp("rack-a"),
			Endpoints: []Endpoint{{Name: "PLAINTEXT", Host: "10.0.0.1", Port: 9092, Protocol: "PLAINTEXT"}, {Name: "SSL", Host: "h", Port: 9093, Protocol: "SSL"}}},
		&RegisterBrokerRecord{BrokerID: 2},
		&FenceBrokerRecord{BrokerID: 3, BrokerEpoch: 77},
		&UnfenceBrokerRecord{BrokerID: 3, BrokerEpoch: 77},
		&UnregisterBrokerRecord{BrokerID: 3, BrokerEpoch: 1 << 40},
		&CreateTopicRecord{Name: "orders", TopicID: [16]byte{9, 9}, Configs: map[string]string{"b": "2", "a": "1"},
			Partitions: []PartitionRecord{{Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}, Leader: 1}, {Replicas: []int32{2}, ISR: []int32{2}, Leader: 2}}},
		&CreatePartitionsRecord{TopicID: [16]byte{9, 9}, Partitions: []PartitionRecord{{Replicas: []int32{3, 1}, ISR: []int32{3}, Leader: -1}}},
		&DeleteTopicRecord{TopicID: [16]byte{9, 9}},
		&AlterConfigsRecord{ResourceType: ConfigTopic, ResourceName: "orders", Set: map[string]string{"retention.ms": "1"}, Delete: []string{"segment.ms", "x"}},
		&AlterConfigsRecord{ResourceType: ConfigBroker},
		&PartitionChangeRecord{TopicID: [16]byte{1}, Partition: 7, Leader: -1, LeaderEpoch: 3, PartitionEpoch: 9, ISR: []int32{2}, Replicas: []int32{2, 1}},
		&AllocateProducerIDsRecord{BrokerID: 2, BrokerEpoch: 5, FirstID: 3000, Size: 1000},
		&RegisterControllerRecord{ControllerID: 4, IncarnationID: [16]byte{4, 4},
			Endpoints: []Endpoint{{Name: "CONTROLLER", Host: "10.0.0.4", Port: 9093, Protocol: "PLAINTEXT"}}},
		&RegisterControllerRecord{ControllerID: 5},
	}
}

func TestRecordEncodingRoundTrip(t *testing.T) {
	recs := sampleRecords()
	entry := AppendEntry(nil, recs...)
	got, err := DecodeEntry(entry)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, recs) {
		t.Fatalf("decoded %+v\nwant %+v", got, recs)
	}
	// Canonical: re-encoding gives the same bytes.
	if again := AppendEntry(nil, got...); !bytes.Equal(again, entry) {
		t.Fatal("re-encoding differs")
	}
	// Every truncation is an error wrapping ErrCorrupt, never a panic.
	for i := range entry {
		if _, err := DecodeEntry(entry[:i]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated at %d: err %v", i, err)
		}
	}
	// The header: type, version, body length.
	fence := AppendRecord(nil, &FenceBrokerRecord{BrokerID: 1, BrokerEpoch: 2})
	if want := []byte{byte(TypeFenceBroker), 0, 2, 2, 4}; !bytes.Equal(fence, want) {
		t.Fatalf("FenceBroker encodes as %x, want %x", fence, want)
	}
	for _, bad := range [][]byte{
		{byte(TypeFenceBroker), 1, 2, 2, 4},                      // unknown version
		{99, 0, 0},                                               // unknown type
		{byte(TypeFenceBroker), 0, 3, 2, 4, 0},                   // trailing body byte
		{byte(TypeDeleteTopic), 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, // length past input
		{byte(TypeAlterConfigs), 0, 6, 2, 0, 2, 1, 'b', 0},       // map keys not ascending (short)
		{byte(TypeCreatePartitions), 0, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f}, // count past input
	} {
		if _, _, err := DecodeRecord(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%x: err %v", bad, err)
		}
	}
}

// FuzzDecodeRecord: decoding arbitrary bytes never panics, never allocates beyond what the
// input can hold (counts are checked against the bytes left), and whatever decodes
// re-encodes to bytes that decode to the same record.
func FuzzDecodeRecord(f *testing.F) {
	for _, rec := range sampleRecords() {
		f.Add(AppendRecord(nil, rec))
	}
	f.Add(AppendEntry(nil, sampleRecords()...))
	f.Add([]byte{byte(TypeRegisterBroker), 0, 0x80, 0x80, 0x80, 0x80, 0x08})
	f.Fuzz(checkDecode)
}

func checkDecode(t *testing.T, b []byte) {
	if len(b) > 1<<16 {
		return
	}
	if recs, err := DecodeEntry(b); err == nil {
		again, err := DecodeEntry(AppendEntry(nil, recs...))
		if err != nil || !reflect.DeepEqual(again, recs) {
			t.Fatalf("entry round trip of %x: %v", b, err)
		}
	}
	rec, rest, err := DecodeRecord(b)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error does not wrap ErrCorrupt: %v", err)
		}
		return
	}
	if len(rest) > len(b) {
		t.Fatal("rest longer than input")
	}
	enc := AppendRecord(nil, rec)
	again, tail, err := DecodeRecord(enc)
	if err != nil || len(tail) != 0 || !reflect.DeepEqual(again, rec) {
		t.Fatalf("round trip of %x (%#v): %v", b, rec, err)
	}
	if !bytes.Equal(AppendRecord(nil, again), enc) {
		t.Fatalf("encoding of %x not stable", b)
	}
}

// TestDecodeRecordMutations runs the fuzz check over seeded random mutations of valid
// encodings (bit flips, byte changes, truncations, insertions), so every plain test run
// exercises the decoder's error paths.
func TestDecodeRecordMutations(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	var seeds [][]byte
	for _, rec := range sampleRecords() {
		seeds = append(seeds, AppendRecord(nil, rec))
	}
	seeds = append(seeds, AppendEntry(nil, sampleRecords()...))
	for range 20000 {
		b := bytes.Clone(seeds[rnd.IntN(len(seeds))])
		for range 1 + rnd.IntN(3) {
			i := rnd.IntN(len(b))
			switch rnd.IntN(4) {
			case 0:
				b[i] ^= 1 << rnd.IntN(8)
			case 1:
				b[i] = byte(rnd.IntN(256))
			case 2:
				b = b[:i]
			case 3:
				b = append(b[:i], append([]byte{byte(rnd.IntN(256))}, b[i:]...)...)
			}
			if len(b) == 0 {
				b = []byte{0}
			}
		}
		checkDecode(t, b)
	}
}

func TestDecodeAllocatesWithinInput(t *testing.T) {
	// A count of 2^62 elements in a few bytes is refused before anything is allocated for it.
	huge := append([]byte{byte(TypePartitionChange), 0, 0}, make([]byte, 16+4)...) // topic, partition, leader, epochs
	huge = appendUvarint(huge, 1<<62)
	huge = append(huge, 0, 0, 0, 0, 0)
	huge[2] = byte(len(huge) - 3)
	if _, _, err := DecodeRecord(huge); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err %v", err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		DecodeRecord(huge)
	}
	runtime.ReadMemStats(&after)
	if perOp := (after.TotalAlloc - before.TotalAlloc) / 100; perOp > 1024 {
		t.Fatalf("%d bytes allocated per decode of a bogus count", perOp)
	}
}
