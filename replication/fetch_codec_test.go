package replication

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFetchRequestEncodingMatchesKmsg: the hand-written Fetch v12 request is byte-for-byte the
// one kmsg encodes for the same fields (a topic met again after another one gets a second
// topic entry).
func TestFetchRequestEncodingMatchesKmsg(t *testing.T) {
	params := fetchParams{correlationID: 77, clientID: "spate-replica-fetcher-2", replicaID: 2, maxWaitMs: 500, minBytes: 1, maxBytes: 10 << 20}
	parts := []fetchPartition{
		{"orders", 0, 3, 100, 2, 5, 1 << 20},
		{"orders", 4, 3, 7, -1, 0, 1 << 20},
		{"events", 1, 9, 1 << 40, 9, 1 << 39, 4096},
		{"orders", 2, 3, 0, -1, 0, 1 << 20},
	}
	got := appendFetchRequest([]byte("prefix"), &params, parts)
	if string(got[:6]) != "prefix" {
		t.Fatal("dst clobbered")
	}
	got = got[6:]

	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(12)
	req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 2, 500, 1, 10<<20
	req.SessionID, req.SessionEpoch = 0, -1
	for i, p := range parts {
		if i == 0 || p.topic != parts[i-1].topic {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = p.topic
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.FetchOffset = p.partition, p.currentLeaderEpoch, p.fetchOffset
		rp.LastFetchedEpoch, rp.LogStartOffset, rp.PartitionMaxBytes = p.lastFetchedEpoch, p.logStartOffset, p.partitionMaxBytes
		rt := &req.Topics[len(req.Topics)-1]
		rt.Partitions = append(rt.Partitions, rp)
	}
	want := kmsg.NewRequestFormatter(kmsg.FormatterClientID(params.clientID)).AppendRequest(nil, req, 77)
	if !bytes.Equal(got, want) {
		t.Fatalf("request differs from kmsg's:\n got %x\nwant %x", got, want)
	}
}

// sampleFetchResponse is a Fetch v12 response using every field the decoder reads or skips.
func sampleFetchResponse() *kmsg.FetchResponse {
	resp := kmsg.NewPtrFetchResponse()
	resp.SetVersion(12)
	resp.ThrottleMillis, resp.SessionID = 3, 0
	t1 := kmsg.NewFetchResponseTopic()
	t1.Topic = "orders"
	p0 := kmsg.NewFetchResponseTopicPartition()
	p0.Partition, p0.HighWatermark, p0.LastStableOffset, p0.LogStartOffset = 0, 120, 110, 4
	p0.RecordBatches = testBatch(100, 3, 40)
	p0.PreferredReadReplica = -1
	at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
	at.ProducerID, at.FirstOffset = 9, 101
	p0.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{at, at}
	p0.UnknownTags.Set(7, []byte("future"))
	p1 := kmsg.NewFetchResponseTopicPartition()
	p1.Partition, p1.ErrorCode, p1.HighWatermark, p1.LastStableOffset, p1.LogStartOffset = 5, 0, 50, 50, 0
	p1.DivergingEpoch.Epoch, p1.DivergingEpoch.EndOffset = 2, 33
	p1.CurrentLeader.LeaderID, p1.CurrentLeader.LeaderEpoch = 3, 4
	p1.RecordBatches = []byte{}
	p2 := kmsg.NewFetchResponseTopicPartition()
	p2.Partition, p2.ErrorCode = 6, 74
	p2.HighWatermark, p2.LastStableOffset, p2.LogStartOffset = -1, -1, -1
	p2.SnapshotID.EndOffset, p2.SnapshotID.Epoch = 8, 1
	t1.Partitions = append(t1.Partitions, p0, p1, p2)
	t2 := kmsg.NewFetchResponseTopic()
	t2.Topic = "events"
	p3 := kmsg.NewFetchResponseTopicPartition()
	p3.Partition, p3.HighWatermark, p3.LastStableOffset = 1, 7, 7
	p3.RecordBatches = append(testBatch(0, 1, 10), testBatch(1, 2, 20)...)
	t2.Partitions = append(t2.Partitions, p3)
	resp.Topics = append(resp.Topics, t1, t2)
	return resp
}

// frameOf encodes a kmsg Fetch response as a frame after its size prefix (header v1).
func frameOf(corr int32, resp *kmsg.FetchResponse) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(corr))
	b = append(b, 0)
	return resp.AppendTo(b)
}

// fromKmsg is what decode should produce for a kmsg response.
func fromKmsg(corr int32, resp *kmsg.FetchResponse) fetchResponse {
	d := fetchResponse{correlationID: corr, throttleMs: resp.ThrottleMillis, errorCode: resp.ErrorCode, sessionID: resp.SessionID}
	for _, t := range resp.Topics {
		rt := fetchRespTopic{name: []byte(t.Topic)}
		for _, p := range t.Partitions {
			rt.parts = append(rt.parts, fetchRespPartition{
				partition: p.Partition, errorCode: p.ErrorCode, highWatermark: p.HighWatermark,
				lastStableOffset: p.LastStableOffset, logStartOffset: p.LogStartOffset,
				divergingEpoch:  EpochEndOffset{p.DivergingEpoch.Epoch, p.DivergingEpoch.EndOffset},
				currentLeaderID: p.CurrentLeader.LeaderID, currentLeaderEpoch: p.CurrentLeader.LeaderEpoch,
				preferredReadReplica: p.PreferredReadReplica, records: p.RecordBatches,
			})
		}
		d.topics = append(d.topics, rt)
	}
	return d
}

// toKmsg re-encodes a decoded response with kmsg.
func toKmsg(d *fetchResponse) *kmsg.FetchResponse {
	resp := kmsg.NewPtrFetchResponse()
	resp.SetVersion(12)
	resp.ThrottleMillis, resp.ErrorCode, resp.SessionID = d.throttleMs, d.errorCode, d.sessionID
	for _, t := range d.topics {
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic = string(t.name)
		for _, p := range t.parts {
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.Partition, rp.ErrorCode, rp.HighWatermark = p.partition, p.errorCode, p.highWatermark
			rp.LastStableOffset, rp.LogStartOffset, rp.PreferredReadReplica = p.lastStableOffset, p.logStartOffset, p.preferredReadReplica
			rp.DivergingEpoch.Epoch, rp.DivergingEpoch.EndOffset = p.divergingEpoch.Epoch, p.divergingEpoch.EndOffset
			rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = p.currentLeaderID, p.currentLeaderEpoch
			rp.RecordBatches = p.records
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// normalized makes decoded responses comparable: empty and nil slices alike for names.
func normalized(d fetchResponse) fetchResponse {
	out := d
	out.topics = nil
	for _, t := range d.topics {
		rt := fetchRespTopic{name: append([]byte{}, t.name...)}
		for _, p := range t.parts {
			if p.records != nil {
				p.records = append([]byte{}, p.records...)
			}
			rt.parts = append(rt.parts, p)
		}
		out.topics = append(out.topics, rt)
	}
	return out
}

// TestFetchResponseDecodingMatchesKmsg: every field kmsg encodes (aborted transactions,
// diverging epoch, current leader, snapshot id, unknown tags, null and empty records) decodes
// to the same values, and the decoder's reused slices hold the next response correctly.
func TestFetchResponseDecodingMatchesKmsg(t *testing.T) {
	resp := sampleFetchResponse()
	var d fetchResponse
	if err := d.decode(frameOf(42, resp)); err != nil {
		t.Fatal(err)
	}
	if got, want := normalized(d), normalized(fromKmsg(42, resp)); !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", got, want)
	}
	if d.topics[0].parts[2].records != nil {
		t.Fatal("null records decoded as non-nil")
	}
	if r := d.topics[0].parts[1].records; r == nil || len(r) != 0 {
		t.Fatal("empty records decoded as null")
	}
	// A smaller response after a larger one: reused slices, nothing left over.
	small := kmsg.NewPtrFetchResponse()
	small.SetVersion(12)
	st := kmsg.NewFetchResponseTopic()
	st.Topic = "x"
	sp := kmsg.NewFetchResponseTopicPartition()
	sp.Partition, sp.RecordBatches = 9, testBatch(0, 1, 1)
	st.Partitions = append(st.Partitions, sp)
	small.Topics = append(small.Topics, st)
	if err := d.decode(frameOf(43, small)); err != nil {
		t.Fatal(err)
	}
	if got, want := normalized(d), normalized(fromKmsg(43, small)); !reflect.DeepEqual(got, want) {
		t.Fatalf("second decode\n%+v\nwant\n%+v", got, want)
	}
	// Every truncation of a valid frame is malformed, never a panic.
	full := frameOf(42, resp)
	for n := 0; n < len(full); n++ {
		if err := d.decode(full[:n]); err == nil {
			t.Fatalf("truncated to %d of %d bytes: decoded", n, len(full))
		}
	}
}

// FuzzDecodeFetchResponse: the hand decoder never panics on any input; it grows its slices by
// at most one element per element actually present (so never past what the input size can
// hold); and what it decodes re-encodes (kmsg) to a frame that decodes to the same values.
func FuzzDecodeFetchResponse(f *testing.F) {
	f.Add(frameOf(1, sampleFetchResponse()))
	empty := kmsg.NewPtrFetchResponse()
	empty.SetVersion(12)
	f.Add(frameOf(2, empty))
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		var d fetchResponse
		err := d.decode(data)
		// Bounds: a topic takes at least 3 bytes and a partition at least 37; append at most
		// doubles a capacity.
		if c := cap(d.topics); c > 2*(len(data)/3+1) {
			t.Fatalf("%d topics of capacity for %d bytes", c, len(data))
		}
		for _, tp := range d.topics[:cap(d.topics)] {
			if c := cap(tp.parts); c > 2*(len(data)/37+1) {
				t.Fatalf("%d partitions of capacity for %d bytes", c, len(data))
			}
		}
		if err != nil {
			return
		}
		var again fetchResponse
		if err := again.decode(frameOf(d.correlationID, toKmsg(&d))); err != nil {
			t.Fatalf("re-encoded response does not decode: %v", err)
		}
		if !reflect.DeepEqual(normalized(d), normalized(again)) {
			t.Fatalf("decode → encode → decode differs:\n%+v\n%+v", d, again)
		}
	})
}
