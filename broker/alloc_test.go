//go:build !race

// Not built with -race: the race detector makes sync.Pool drop objects at random, which
// allocates. `make test` runs the allocation budgets in a separate pass without -race.

package broker

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/logstore"
)

// TestAllocationBudgetProduceFetch: in steady state the produce path (decode, sequence check,
// append, encode) and the fetch path (decode, locate, read regions, encode) allocate nothing
// per request. netio's part (framing and writing) is budgeted in netio's own tests.
func TestAllocationBudgetProduceFetch(t *testing.T) {
	tb := startBroker(t, "", nil)
	b := tb.b
	if _, code, msg := b.topics.create("alloc", 1, nil, false); code != 0 {
		t.Fatal(msg)
	}
	recs := make([]logstore.Record, 16)
	for i := range recs {
		recs[i] = logstore.Record{Key: []byte("key"), Value: make([]byte, 1000)}
	}
	batch := logstore.AppendBatch(nil, logstore.BatchSpec{BaseTimestamp: time.Now().UnixMilli(), ProducerID: 7,
		ProducerEpoch: 0, BaseSequence: 0, PartitionLeaderEpoch: -1, Records: recs})
	preq := kmsg.NewPtrProduceRequest()
	preq.SetVersion(9)
	preq.Acks = -1
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "alloc"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	preq.Topics = append(preq.Topics, rt)
	body := preq.AppendTo(nil)
	// The record set is the tail of the body (one partition); sequences advance in place.
	recOff := len(body) - len(batch) - 3 // partition tags, topic tags, request tags follow
	seq := int32(0)
	produce := func() {
		st := producePool.Get().(*produceState)
		if !st.decode(body, 9) {
			t.Fatal("decode")
		}
		p := &st.topics[0].parts[0]
		if code := b.produceTo(st, st.topics[0].name, p); code != 0 {
			t.Fatalf("produce: code %d", code)
		}
		st.encode(1, 9)
		st.release()
		seq += 16
		rec := body[recOff : recOff+len(batch)]
		binary.BigEndian.PutUint32(rec[53:], uint32(seq))
		binary.BigEndian.PutUint32(rec[17:], logstore.BatchCRC(rec))
	}
	produce()
	if n := testing.AllocsPerRun(300, produce); n != 0 {
		t.Errorf("produce: %v allocations per request, want 0", n)
	}

	freq := kmsg.NewPtrFetchRequest()
	freq.SetVersion(12)
	freq.ReplicaID = -1
	freq.MaxBytes = 1 << 20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "alloc"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	freq.Topics = append(freq.Topics, ft)
	fbody := freq.AppendTo(nil)
	fetch := func() {
		st := fetchPool.Get().(*fetchState)
		if !st.req.decode(fbody, 12) {
			t.Fatal("decode fetch")
		}
		st.b, st.h = b, reqHeader{key: 1, version: 12}
		st.resolve()
		st.read()
		if st.bytes == 0 || st.parts[0].errCode != 0 {
			t.Fatalf("fetch read %d bytes, code %d", st.bytes, st.parts[0].errCode)
		}
		st.encode()
		st.resp.Release()
	}
	fetch()
	if n := testing.AllocsPerRun(300, fetch); n != 0 {
		t.Errorf("fetch: %v allocations per request, want 0", n)
	}
}
