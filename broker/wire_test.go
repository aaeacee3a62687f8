package broker

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/logstore"
)

func sampleProduceRequest(version int16) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(version)
	req.Acks = 1
	req.TimeoutMillis = 1500
	for _, name := range []string{"a", "topic-b"} {
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = name
		for p := int32(0); p < 2; p++ {
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition = p
			rp.Records = logstore.AppendBatch(nil, logstore.BatchSpec{BaseTimestamp: 1, ProducerID: -1, BaseSequence: -1,
				Records: []logstore.Record{{Key: []byte(name), Value: []byte{byte(p)}}}})
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	return req
}

// TestProduceDecodeMatchesKmsg: the hand decoder reads what kmsg encodes, for every version.
func TestProduceDecodeMatchesKmsg(t *testing.T) {
	for v := int16(0); v <= 11; v++ {
		req := sampleProduceRequest(v)
		body := req.AppendTo(nil)
		var st produceState
		if !st.decode(body, v) {
			t.Fatalf("v%d: decode failed", v)
		}
		checkProduceDecode(t, v, req, &st)
	}
}

func checkProduceDecode(t *testing.T, v int16, req *kmsg.ProduceRequest, st *produceState) {
	t.Helper()
	if st.acks != req.Acks || st.txn != (req.TransactionID != nil) || len(st.topics) != len(req.Topics) {
		t.Fatalf("v%d: header fields differ: acks %d/%d topics %d/%d", v, st.acks, req.Acks, len(st.topics), len(req.Topics))
	}
	for i, rt := range req.Topics {
		if string(st.topics[i].name) != rt.Topic || len(st.topics[i].parts) != len(rt.Partitions) {
			t.Fatalf("v%d: topic %d differs", v, i)
		}
		for j, rp := range rt.Partitions {
			p := st.topics[i].parts[j]
			if p.index != rp.Partition || !bytes.Equal(p.records, rp.Records) {
				t.Fatalf("v%d: partition %d/%d differs", v, i, j)
			}
		}
	}
}

// TestProduceResponseMatchesKmsg: the hand encoder writes byte-for-byte what kmsg writes.
func TestProduceResponseMatchesKmsg(t *testing.T) {
	for v := int16(3); v <= 11; v++ {
		st := &produceState{topics: []prodTopic{
			{name: []byte("orders"), parts: []prodPart{{index: 0, errCode: 0, base: 42, appendTime: -1, logStart: 7}, {index: 3, errCode: 3, base: -1, appendTime: -1, logStart: -1}}},
			{name: []byte("x"), parts: []prodPart{{index: 1, errCode: 10, base: -1, appendTime: 99, logStart: 0}}},
		}}
		st.encode(77, v)
		resp := kmsg.NewPtrProduceResponse()
		resp.SetVersion(v)
		for _, t := range st.topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic = string(t.name)
			for _, p := range t.parts {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition, rp.ErrorCode, rp.BaseOffset, rp.LogAppendTime, rp.LogStartOffset = p.index, p.errCode, p.base, p.appendTime, p.logStart
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		want := []byte{0, 0, 0, 77}
		if v >= 9 {
			want = append(want, 0)
		}
		want = resp.AppendTo(want)
		if !bytes.Equal(st.buf, want) {
			t.Fatalf("v%d: encoding differs\n got %x\nwant %x", v, st.buf, want)
		}
	}
}

func sampleFetchRequest(version int16) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(version)
	req.ReplicaID = -1
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 500, 1, 1<<20
	req.IsolationLevel = 1
	for i, name := range []string{"a", "topic-b"} {
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = name
		rt.TopicID[0] = byte(i + 1)
		for p := int32(0); p < 2; p++ {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = p, int64(10*p), 4096, 0
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	return req
}

// TestFetchDecodeMatchesKmsg: the hand decoder reads what kmsg encodes, for every version.
func TestFetchDecodeMatchesKmsg(t *testing.T) {
	for v := int16(4); v <= 16; v++ {
		req := sampleFetchRequest(v)
		if v >= 15 {
			req.ReplicaState.ID = 3
		}
		var q fetchRequest
		if !q.decode(req.AppendTo(nil), v) {
			t.Fatalf("v%d: decode failed", v)
		}
		checkFetchDecode(t, v, req, &q)
	}
}

func checkFetchDecode(t *testing.T, v int16, req *kmsg.FetchRequest, q *fetchRequest) {
	t.Helper()
	wantReplica := req.ReplicaID
	if v >= 15 {
		wantReplica = req.ReplicaState.ID
	}
	if q.ReplicaID != wantReplica || q.MaxWaitMillis != req.MaxWaitMillis || q.MinBytes != req.MinBytes || q.MaxBytes != req.MaxBytes ||
		q.IsolationLevel != req.IsolationLevel || q.SessionID != req.SessionID || q.SessionEpoch != req.SessionEpoch || len(q.Topics) != len(req.Topics) {
		t.Fatalf("v%d: fields differ: %+v", v, q)
	}
	for i, rt := range req.Topics {
		qt := &q.Topics[i]
		if v >= 13 && qt.TopicID != rt.TopicID || v < 13 && string(q.topicName(qt)) != rt.Topic || len(qt.Partitions) != len(rt.Partitions) {
			t.Fatalf("v%d: topic %d differs", v, i)
		}
		for j, rp := range rt.Partitions {
			p := qt.Partitions[j]
			wantEpoch := rp.CurrentLeaderEpoch
			if v < 9 {
				wantEpoch = -1
			}
			if p.Partition != rp.Partition || p.FetchOffset != rp.FetchOffset || p.PartitionMaxBytes != rp.PartitionMaxBytes || p.CurrentLeaderEpoch != wantEpoch {
				t.Fatalf("v%d: partition %d/%d differs: %+v", v, i, j, p)
			}
		}
	}
}

// TestFetchResponseMatchesKmsg: the response written as encoded fields plus file regions is
// byte-for-byte kmsg's encoding of the same response with the records inline.
func TestFetchResponseMatchesKmsg(t *testing.T) {
	tb := startBroker(t, "", nil)
	b := tb.b
	if _, code, msg := b.topics.create("a", 2, nil, false); code != 0 {
		t.Fatal(msg)
	}
	p := b.topics.partition("a", 0)
	var info logstore.AppendInfo
	for i := 0; i < 30; i++ {
		batch := logstore.AppendBatch(nil, logstore.BatchSpec{BaseTimestamp: time.Now().UnixMilli(), ProducerID: -1, BaseSequence: -1,
			Records: []logstore.Record{{Value: bytes.Repeat([]byte{byte(i)}, 300)}}})
		if err := p.log.AppendAsLeader(batch, 0, false, &info); err != nil {
			t.Fatal(err)
		}
	}
	for v := int16(4); v <= 16; v++ {
		for _, iso := range []int8{0, 1} {
			req := sampleFetchRequest(v)
			req.IsolationLevel = iso
			req.Topics[1].Topic = "missing"
			if v >= 13 {
				req.Topics[0].TopicID = b.topics.get("a").meta.ID
			}
			st := fetchPool.Get().(*fetchState)
			if !st.req.decode(req.AppendTo(nil), v) {
				t.Fatal("decode")
			}
			st.b, st.h = b, reqHeader{key: 1, version: v, correlation: 5, flexible: v >= 12}
			st.resolve()
			st.read()
			st.encode()
			var got []byte
			for _, part := range st.resp.Parts {
				if part.Region.File != nil {
					buf := make([]byte, part.Region.Length)
					if _, err := part.Region.File.ReadAt(buf, part.Region.Offset); err != nil && err != io.EOF {
						t.Fatal(err)
					}
					got = append(got, buf...)
				} else {
					got = append(got, part.Bytes...)
				}
			}
			want := kmsg.NewPtrFetchResponse()
			want.SetVersion(v)
			for ti, rt := range req.Topics {
				ot := kmsg.NewFetchResponseTopic()
				ot.Topic, ot.TopicID = rt.Topic, rt.TopicID
				for range rt.Partitions {
					fp := &st.parts[len(want.Topics)*2+len(ot.Partitions)]
					op := kmsg.NewFetchResponseTopicPartition()
					op.Partition, op.ErrorCode, op.HighWatermark, op.LastStableOffset, op.LogStartOffset = fp.part.Partition, fp.errCode, fp.hw, fp.lso, fp.start
					if iso == 1 {
						op.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
					}
					op.PreferredReadReplica = -1
					op.RecordBatches = []byte{}
					for _, r := range fp.res.Regions {
						op.RecordBatches = append(op.RecordBatches, r.Data...)
					}
					ot.Partitions = append(ot.Partitions, op)
				}
				_ = ti
				want.Topics = append(want.Topics, ot)
			}
			wb := []byte{0, 0, 0, 5}
			if v >= 12 {
				wb = append(wb, 0)
			}
			wb = want.AppendTo(wb)
			if !bytes.Equal(got, wb) {
				t.Fatalf("v%d isolation %d: encoding differs\n got %x\nwant %x", v, iso, got, wb)
			}
			if st.parts[0].res.Bytes == 0 || st.parts[2].errCode == 0 {
				t.Fatalf("v%d: expected data for a-0 and an error for the missing topic", v)
			}
			st.resp.Release()
		}
	}
}

// FuzzProduceDecode: arbitrary bodies never panic the hand decoder, and whenever kmsg also
// accepts a body, both read the same fields.
func FuzzProduceDecode(f *testing.F) {
	for v := int16(3); v <= 11; v++ {
		f.Add(int8(v), sampleProduceRequest(v).AppendTo(nil))
	}
	f.Fuzz(func(t *testing.T, version int8, body []byte) {
		v := int16(version%9+9) % 9 // 0..8
		v += 3
		var st produceState
		ok := st.decode(body, v)
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(v)
		if ok && req.ReadFrom(body) == nil {
			checkProduceDecode(t, v, req, &st)
		}
	})
}

// FuzzFetchDecode: the same for fetch requests.
func FuzzFetchDecode(f *testing.F) {
	for v := int16(4); v <= 16; v++ {
		f.Add(int8(v), sampleFetchRequest(v).AppendTo(nil))
	}
	f.Fuzz(func(t *testing.T, version int8, body []byte) {
		v := int16(version%13+13)%13 + 4
		var q fetchRequest
		ok := q.decode(body, v)
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(v)
		if ok && req.ReadFrom(body) == nil && len(req.ForgottenTopics) == 0 {
			checkFetchDecode(t, v, req, &q)
		}
	})
}
