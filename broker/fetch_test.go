package broker

import (
	"bytes"
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/logstore"
)

// fetchReq builds a fetch of one partition. (kgo picks the version it negotiates, so the
// topic is named both ways.)
func fetchReq(tb *testBroker, version int16, topic string, offset int64, maxWait, minBytes, maxBytes, partMax int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(version)
	req.ReplicaID = -1
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = maxWait, minBytes, maxBytes
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	if t := tb.b.topics.get(topic); t != nil {
		rt.TopicID = t.meta.ID
	}
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = offset, partMax, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// batchesIn splits a record set into its batches' (base offset, last offset) pairs.
func batchesIn(t *testing.T, recs []byte) [][2]int64 {
	t.Helper()
	var out [][2]int64
	var h logstore.BatchHeader
	for ; len(recs) > 0; recs = recs[h.Size():] {
		if err := logstore.CheckBatch(recs, 0, &h); err != nil {
			t.Fatalf("bad batch in fetch response: %v", err)
		}
		out = append(out, [2]int64{h.BaseOffset, h.LastOffset()})
	}
	return out
}

// TestFetchLimitsLongPollAndErrors checks Fetch's rules at the protocol level: whole batches
// from the one holding the offset, partition and response byte limits with KIP-74's first
// batch exception, long polling that returns as soon as data arrives or after max_wait_ms with
// an empty (not null) record set, the "no session" answers of KIP-227, refused replica ids and
// OFFSET_OUT_OF_RANGE.
func TestFetchLimitsLongPollAndErrors(t *testing.T) {
	tb := startBroker(t, "", nil)
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "f", 1, nil)
	pid, epoch := initProducerID(t, cl)
	for i := 0; i < 10; i++ { // ten batches of 4 records, offsets 4i..4i+3
		if code, _ := rawProduce(t, cl, "f", pid, epoch, int32(4*i), 4); code != 0 {
			t.Fatalf("produce: %d", code)
		}
	}
	ctx := context.Background()
	one := func(req *kmsg.FetchRequest) (*kmsg.FetchResponse, kmsg.FetchResponseTopicPartition) {
		t.Helper()
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			return resp, kmsg.FetchResponseTopicPartition{}
		}
		return resp, resp.Topics[0].Partitions[0]
	}
	batchSize := func() int32 {
		_, p := one(fetchReq(tb, 12, "f", 0, 0, 1, 1<<20, 1<<20))
		return int32(len(p.RecordBatches) / 10)
	}()
	for _, v := range []int16{4, 7, 11, 12, 16} {
		req := fetchReq(tb, v, "f", 6, 0, 1, 1<<20, 1<<20)
		_, p := one(req)
		got := batchesIn(t, p.RecordBatches)
		if p.ErrorCode != 0 || len(got) != 9 || got[0] != [2]int64{4, 7} || p.HighWatermark != 40 {
			t.Fatalf("v%d fetch at 6: code %d, batches %v, hw %d", v, p.ErrorCode, got, p.HighWatermark)
		}
	}
	// Partition limit: whole batches that fit; a limit below one batch still returns the first
	// (KIP-74); the response limit caps the total the same way.
	if _, p := one(fetchReq(tb, 12, "f", 0, 0, 1, 1<<20, 2*batchSize+batchSize/2)); len(batchesIn(t, p.RecordBatches)) != 2 {
		t.Fatalf("partition limit of 2.5 batches returned %v", batchesIn(t, p.RecordBatches))
	}
	if _, p := one(fetchReq(tb, 12, "f", 0, 0, 1, 1<<20, 10)); len(batchesIn(t, p.RecordBatches)) != 1 {
		t.Fatalf("tiny partition limit returned %v", batchesIn(t, p.RecordBatches))
	}
	if _, p := one(fetchReq(tb, 12, "f", 0, 0, 1, 3*batchSize, 1<<20)); len(batchesIn(t, p.RecordBatches)) != 3 {
		t.Fatalf("response limit of 3 batches returned %v", batchesIn(t, p.RecordBatches))
	}
	// Long poll: nothing arrives — answered after max_wait_ms with an empty record set.
	began := time.Now()
	_, p := one(fetchReq(tb, 12, "f", 40, 400, 1, 1<<20, 1<<20))
	if waited := time.Since(began); waited < 350*time.Millisecond || p.ErrorCode != 0 || p.RecordBatches == nil || len(p.RecordBatches) != 0 {
		t.Fatalf("idle long poll: waited %v, code %d, records %v (want empty, not null)", waited, p.ErrorCode, p.RecordBatches)
	}
	// Long poll: data arrives — answered at once, well before max_wait_ms.
	go func() {
		time.Sleep(200 * time.Millisecond)
		rawProduce(t, cl, "f", pid, epoch, 40, 2)
	}()
	began = time.Now()
	_, p = one(fetchReq(tb, 12, "f", 40, 10000, 1, 1<<20, 1<<20))
	if waited := time.Since(began); waited > 5*time.Second || len(batchesIn(t, p.RecordBatches)) != 1 {
		t.Fatalf("woken long poll: waited %v, batches %v", waited, batchesIn(t, p.RecordBatches))
	}
	// Sessions: none are kept; naming one is FETCH_SESSION_ID_NOT_FOUND.
	req := fetchReq(tb, 12, "f", 0, 0, 1, 1<<20, 1<<20)
	req.SessionID, req.SessionEpoch = 12345, 1
	if resp, _ := one(req); resp.ErrorCode != errFetchSessionIDNotFound {
		t.Fatalf("unknown session: code %d", resp.ErrorCode)
	}
	req = fetchReq(tb, 12, "f", 0, 0, 1, 1<<20, 1<<20)
	req.SessionEpoch = 0 // asks for a new session
	if resp, p := one(req); resp.ErrorCode != 0 || resp.SessionID != 0 || p.ErrorCode != 0 {
		t.Fatalf("new-session request: code %d session %d", resp.ErrorCode, resp.SessionID)
	}
	// A client may not fetch as a replica.
	req = fetchReq(tb, 12, "f", 0, 0, 1, 1<<20, 1<<20)
	req.ReplicaID, req.ReplicaState.ID = 2, 2
	if resp, _ := one(req); resp.ErrorCode != errClusterAuthorizationFailed {
		t.Fatalf("replica fetch from a client: code %d", resp.ErrorCode)
	}
	// Past the end: OFFSET_OUT_OF_RANGE with the watermarks.
	if _, p := one(fetchReq(tb, 12, "f", 99, 0, 1, 1<<20, 1<<20)); p.ErrorCode != errOffsetOutOfRange || p.HighWatermark != 42 {
		t.Fatalf("fetch past the end: code %d hw %d", p.ErrorCode, p.HighWatermark)
	}
	// Unknown topic (by id, as kgo sends v13+).
	if _, p := one(fetchReq(tb, 12, "nope", 0, 0, 1, 1<<20, 1<<20)); p.ErrorCode != errUnknownTopicID && p.ErrorCode != errUnknownTopicOrPartition {
		t.Fatalf("unknown topic: code %d", p.ErrorCode)
	}
}

// TestFetchParkMissesNoAppend: an append that lands after a long poll found no data but
// before it registered with its partition still wakes it (it reads again once parked), so
// the fetch answers at once instead of after max_wait_ms.
func TestFetchParkMissesNoAppend(t *testing.T) {
	tb := startBroker(t, "", nil)
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "park", 1, nil)
	pid, epoch := initProducerID(t, cl)
	var once sync.Once
	hook := func() {
		once.Do(func() {
			if code, _ := rawProduce(t, cl, "park", pid, epoch, 0, 3); code != 0 {
				t.Errorf("produce: %d", code)
			}
		})
	}
	testHookBeforePark.Store(&hook)
	defer testHookBeforePark.Store(nil)
	began := time.Now()
	resp, err := fetchReq(tb, 12, "park", 0, 10000, 1, 1<<20, 1<<20).RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	waited := time.Since(began)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("response %+v", resp)
	}
	if got := batchesIn(t, resp.Topics[0].Partitions[0].RecordBatches); len(got) != 1 || got[0] != [2]int64{0, 2} || waited > 5*time.Second {
		t.Fatalf("fetch answered after %v with batches %v; want offsets 0-2 at once", waited, got)
	}
}

// TestFetchRecentAndOlderRegions: a fetch answers with batches read three ways — by sendfile
// from a sealed segment, by sendfile from the older part of the active segment, and written
// from the mapping for the active segment's recent tail (logstore.Region.Recent) — and every
// one arrives byte for byte as produced, in offset order, alone or mixed in one response.
func TestFetchRecentAndOlderRegions(t *testing.T) {
	tb := startBroker(t, "", nil)
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "mix", 1, map[string]string{"segment.bytes": strconv.Itoa(3 << 20)})
	const n = 640 // batches of one 8 KiB record: the first segment takes ~380, the active one the rest
	var sent [][]byte
	for i := range n {
		v := make([]byte, 8<<10-100)
		for j := range v {
			v[j] = byte(i*31 + j*7)
		}
		b := logstore.AppendBatch(nil, logstore.BatchSpec{BaseTimestamp: time.Now().UnixMilli(), ProducerID: -1,
			BaseSequence: -1, PartitionLeaderEpoch: -1, Records: []logstore.Record{{Value: v}}})
		if code, base := produceRaw(t, cl, "mix", b); code != 0 || base != int64(i) {
			t.Fatalf("produce %d: code %d base %d", i, code, base)
		}
		sent = append(sent, b)
	}
	// Which batches are recent, as the log sees them.
	var res logstore.ReadResult
	recent, sealed := -1, 0
	for off := int64(0); off < n; off++ {
		if err := tb.b.topics.get("mix").partitions[0].log.Read(off, 1, n, true, &res); err != nil {
			t.Fatal(err)
		}
		if res.Regions[0].Recent && recent < 0 {
			recent = int(off)
		}
		if res.Regions[0].Pos == 0 && off > 0 {
			sealed = int(off) // first batch of the active segment
		}
	}
	res.Release()
	if !(0 < sealed && sealed < recent) {
		t.Fatalf("layout: active segment from %d, recent from %d; the test needs both kinds in it", sealed, recent)
	}
	check := func(from int64, maxBytes int32, wantBatches int) {
		t.Helper()
		resp, err := fetchReq(tb, 12, "mix", from, 0, 1, maxBytes, maxBytes).RequestWith(context.Background(), cl)
		if err != nil {
			t.Fatal(err)
		}
		p := resp.Topics[0].Partitions[0]
		got := batchesIn(t, p.RecordBatches)
		if p.ErrorCode != 0 || len(got) != wantBatches {
			t.Fatalf("fetch from %d (max %d): code %d, %d batches, want %d", from, maxBytes, p.ErrorCode, len(got), wantBatches)
		}
		recs := p.RecordBatches
		for i, g := range got {
			want := sent[int(from)+i]
			if g != [2]int64{from + int64(i), from + int64(i)} || !bytes.Equal(recs[16:len(want)], want[16:]) {
				t.Fatalf("fetch from %d: batch %d is %v or differs from what was produced", from, i, g)
			}
			recs = recs[len(want):]
		}
	}
	check(0, 64<<20, n)                                                          // sealed, older active, recent
	check(int64(sealed-2), 64<<20, n-sealed+2)                                   // the end of the sealed one and the whole active one
	check(int64(recent), 64<<20, n-recent)                                       // recent only
	check(int64(n-1), 1, 1)                                                      // the last batch, alone (KIP-74)
	check(int64(sealed), int32(len(sent[0])*(recent-sealed+1)), recent-sealed+1) // older active and one recent
}

// TestLargeProduceCRCFromArrivalChecksums: batches in produce requests large enough to be
// read as large frames (netio sums their chunks as they arrive, and the broker checks batch
// CRCs from those sums) are refused with CORRUPT_MESSAGE when a byte anywhere under the CRC
// is flipped — first chunk, a middle one, the partial chunk at the end — and accepted and
// stored byte for byte when intact.
func TestLargeProduceCRCFromArrivalChecksums(t *testing.T) {
	tb := startBroker(t, "", nil)
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "big", 1, nil)
	v := make([]byte, 900<<10)
	for i := range v {
		v[i] = byte(i*13 + i>>9)
	}
	batch := logstore.AppendBatch(nil, logstore.BatchSpec{BaseTimestamp: time.Now().UnixMilli(), ProducerID: -1,
		BaseSequence: -1, PartitionLeaderEpoch: -1, Records: []logstore.Record{{Value: v}}})
	for _, at := range []int{25, 70 << 10, 500 << 10, len(batch) - 1} {
		bad := bytes.Clone(batch)
		bad[at] ^= 0x10
		if code, _ := produceRaw(t, cl, "big", bad); code != errCorruptMessage {
			t.Fatalf("byte %d flipped: code %d, want CORRUPT_MESSAGE", at, code)
		}
	}
	if end := endOffset(t, cl, "big"); end != 0 {
		t.Fatalf("log end offset %d after refused batches", end)
	}
	if code, base := produceRaw(t, cl, "big", batch); code != 0 || base != 0 {
		t.Fatalf("intact batch: code %d base %d", code, base)
	}
	resp, err := fetchReq(tb, 12, "big", 0, 0, 1, 4<<20, 4<<20).RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Topics[0].Partitions[0].RecordBatches; len(got) != len(batch) || !bytes.Equal(got[16:], batch[16:]) {
		t.Fatalf("stored batch differs (%d bytes, want %d)", len(got), len(batch))
	}
}
