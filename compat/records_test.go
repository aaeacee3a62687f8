package compat

// What every client test produces and how what it consumes back is checked, independent of
// the client: records are converted to and from record.

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"
	"time"
)

// record is one Kafka record as produced or consumed, in client-neutral form.
type record struct {
	Key, Value string
	Headers    []header
	Time       time.Time // millisecond precision, as Kafka keeps it
	Partition  int32
	Offset     int64 // -1 when unknown: acks=0 produces return no offset
}

type header struct{ Key, Value string }

func (r record) String() string {
	return fmt.Sprintf("{key %q value %q headers %v time %d p%d@%d}", r.Key, r.Value, r.Headers, r.Time.UnixMilli(), r.Partition, r.Offset)
}

// The produce matrix every client runs: each codec with each acks setting.
var (
	codecs  = []string{"none", "gzip", "snappy", "lz4", "zstd"}
	ackings = []string{"0", "1", "all"}
)

const (
	recordsPerRun = 20
	keysPerRun    = 4
	partitions    = 3
)

// baseTime is the timestamp of the first record; record n has baseTime + n ms.
var baseTime = time.UnixMilli(1_700_000_000_000)

// makeRun returns the records of one produce run: keyed key-0..key-3 round robin, two
// headers, explicit timestamps; n is the global number of the first record.
func makeRun(codec, acks string, n int) []record {
	run := codec + "/acks=" + acks
	out := make([]record, recordsPerRun)
	for i := range out {
		out[i] = record{
			Key:       fmt.Sprintf("key-%d", i%keysPerRun),
			Value:     fmt.Sprintf("%s #%d", run, n+i),
			Headers:   []header{{"n", fmt.Sprint(n + i)}, {"run", run}},
			Time:      baseTime.Add(time.Duration(n+i) * time.Millisecond),
			Partition: -1,
			Offset:    -1,
		}
	}
	return out
}

// endOffsets counts produced records per partition: the end offsets the log must reach.
func endOffsets(produced []record) map[int32]int64 {
	ends := map[int32]int64{}
	for p := int32(0); p < partitions; p++ {
		ends[p] = 0
	}
	for _, r := range produced {
		ends[r.Partition]++
	}
	return ends
}

// checkConsumed asserts that consumed (in the order each partition was consumed) is exactly
// produced: the same records with equal keys, values, headers, timestamps and partitions; the
// offsets the producer was told; dense offsets from 0 in every partition; and per key, one
// partition and the produce order.
func checkConsumed(t *testing.T, produced, consumed []record) {
	t.Helper()
	if len(consumed) != len(produced) {
		t.Fatalf("consumed %d records, produced %d", len(consumed), len(produced))
	}
	index := map[string]int{}
	for i, r := range produced {
		index[r.Value] = i
	}
	seen := map[string]bool{}
	next := map[int32]int64{}
	lastOfKey := map[string]int{}
	partOfKey := map[string]int32{}
	for _, c := range consumed {
		i, ok := index[c.Value]
		if !ok || seen[c.Value] {
			t.Fatalf("consumed unexpected or duplicate record %v", c)
		}
		seen[c.Value] = true
		p := produced[i]
		if c.Key != p.Key || !slices.Equal(c.Headers, p.Headers) || !c.Time.Equal(p.Time) || c.Partition != p.Partition {
			t.Fatalf("consumed %v, produced %v", c, p)
		}
		if p.Offset >= 0 && c.Offset != p.Offset {
			t.Fatalf("consumed %v at offset %d, the producer was told %d", c, c.Offset, p.Offset)
		}
		if c.Offset != next[c.Partition] {
			t.Fatalf("consumed %v, want offset %d next in partition %d (offsets dense from 0)", c, next[c.Partition], c.Partition)
		}
		next[c.Partition]++
		if last, ok := lastOfKey[c.Key]; ok {
			if i < last {
				t.Fatalf("key %s: consumed %v after %v, produced the other way round", c.Key, c, produced[last])
			}
			if c.Partition != partOfKey[c.Key] {
				t.Fatalf("key %s in partitions %d and %d", c.Key, partOfKey[c.Key], c.Partition)
			}
		}
		lastOfKey[c.Key], partOfKey[c.Key] = i, c.Partition
	}
}

// byPartition returns each partition's records in offset order.
func byPartition(recs []record) map[int32][]record {
	out := map[int32][]record{}
	for _, r := range recs {
		out[r.Partition] = append(out[r.Partition], r)
	}
	for _, rs := range out {
		slices.SortFunc(rs, func(a, b record) int { return int(a.Offset - b.Offset) })
	}
	return out
}

// timeQuery is a ListOffsets-by-timestamp question and Kafka's answer: the first offset (in
// log order, from logStart) whose timestamp is at or after Time, with that record's
// timestamp; offset -1 when there is none.
type timeQuery struct {
	Partition int32
	Time      int64 // ms
	Offset    int64
	Timestamp int64 // of the record at Offset; -1 with it
}

// timeQueries derives questions and answers from what was consumed: a time before every
// record, every fifth record's own timestamp, one millisecond after the record before it (a
// time between two records of the partition), and a time after every record.
func timeQueries(consumed []record, logStart map[int32]int64) []timeQuery {
	var qs []timeQuery
	for p, rs := range byPartition(consumed) {
		answer := func(ms int64) timeQuery {
			for _, r := range rs {
				if r.Offset >= logStart[p] && r.Time.UnixMilli() >= ms {
					return timeQuery{p, ms, r.Offset, r.Time.UnixMilli()}
				}
			}
			return timeQuery{p, ms, -1, -1}
		}
		qs = append(qs, answer(baseTime.Add(-time.Hour).UnixMilli()))
		for i := 0; i < len(rs); i += 5 {
			ms := rs[i].Time.UnixMilli()
			qs = append(qs, answer(ms))
			if i > 0 {
				if prev := rs[i-1].Time.UnixMilli(); ms-prev > 1 {
					qs = append(qs, answer(prev+1))
				}
			}
		}
		qs = append(qs, answer(baseTime.Add(time.Hour).UnixMilli()))
	}
	slices.SortFunc(qs, func(a, b timeQuery) int {
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return int(a.Time - b.Time)
	})
	return qs
}

// deleteUpTo is where each partition's log is cut by the DeleteRecords step: a few records
// in, usually inside a batch (a fetch from there returns the whole batch and the client
// skips the records before its offset).
func deleteUpTo(ends map[int32]int64) map[int32]int64 {
	cut := map[int32]int64{}
	for p, end := range ends {
		cut[p] = min(end, int64(7+2*p))
	}
	return cut
}

// incompressible returns n random bytes, so a codec cannot shrink a record under a limit.
func incompressible(n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(int64(n))).Read(b)
	return b
}

// The max.message.bytes step: a topic whose limit is set below bigRecord's batch, then above
// it, then below again.
const (
	bigRecord   = 4000
	limitSmall  = "2000"
	limitLarge  = "10000"
	limitSmall2 = "3000"
)

// timeQueriesBeforeAll is, per partition, the question for a time before every record: after
// DeleteRecords its answer is the new log start.
func timeQueriesBeforeAll(consumed []record, logStart map[int32]int64) []timeQuery {
	var qs []timeQuery
	for _, q := range timeQueries(consumed, logStart) {
		if q.Time < baseTime.UnixMilli() {
			qs = append(qs, q)
		}
	}
	return qs
}

// checkAfterDelete asserts that, after DeleteRecords up to cut, each partition read from its
// earliest offset gives exactly the records from cut[p] on.
func checkAfterDelete(t *testing.T, before, after []record, cut map[int32]int64) {
	t.Helper()
	got := byPartition(after)
	for p, rs := range byPartition(before) {
		want := rs[cut[p]:]
		if len(got[p]) != len(want) {
			t.Fatalf("partition %d after DeleteRecords up to %d: consumed %d records, want %d", p, cut[p], len(got[p]), len(want))
		}
		for i, w := range want {
			if g := got[p][i]; g.Offset != w.Offset || g.Value != w.Value || g.Key != w.Key {
				t.Fatalf("partition %d after DeleteRecords up to %d: consumed %v, want %v", p, cut[p], g, w)
			}
		}
	}
}

// checkTimeQueries asks every question with lookup, which returns the client's offset and
// timestamp (timestamp noTimestamp when the client's API does not give it), and reports each
// wrong answer (without stopping the test, so that the steps after it still run).
func checkTimeQueries(t *testing.T, what string, qs []timeQuery, lookup func(timeQuery) (offset, timestamp int64, err error)) {
	t.Helper()
	wrong := 0
	for _, q := range qs {
		off, ts, err := lookup(q)
		if err == nil && off == q.Offset && (ts == noTimestamp || ts == q.Timestamp) {
			continue
		}
		if wrong++; wrong <= 5 {
			got := fmt.Sprintf("offset %d", off)
			if ts != noTimestamp {
				got += fmt.Sprintf(" timestamp %d", ts)
			}
			t.Errorf("%s: partition %d time %d: got %s err %v; want offset %d timestamp %d (the first record at or after the time)",
				what, q.Partition, q.Time, got, err, q.Offset, q.Timestamp)
		}
	}
	if wrong > 5 {
		t.Errorf("%s: %d of %d lookups by time wrong (first 5 shown)", what, wrong, len(qs))
	}
}

const noTimestamp = -2

// checkProducedBatches asserts, from what the proxy saw on the wire, that the client really
// sent topic's records with every codec under every acks setting (a client may fall back to
// no compression when it dislikes the broker's ApiVersions), and that its acks=all batches
// were idempotent exactly when idempotentAll.
func checkProducedBatches(t *testing.T, tb *testBroker, topic string, idempotentAll bool) {
	t.Helper()
	seen := tb.trace.producedBatches()
	acksOf := map[string]int16{"0": 0, "1": 1, "all": -1}
	for ci, codec := range codecs {
		for _, acks := range ackings {
			k := batchKind{Topic: topic, Acks: acksOf[acks], Codec: int8(ci), Idempotent: idempotentAll && acks == "all"}
			if seen[k] == 0 {
				t.Errorf("no %s batch with acks=%s, idempotent %v, seen on the wire; seen: %v", codec, acks, k.Idempotent, seen)
			}
		}
	}
}
