package replication

// A small leader for the fetcher's tests: real sockets on 127.0.0.1, real logstore logs and
// epoch caches, and just enough Kafka — Fetch v12 with replica ids (KIP-320 check, parking
// until data arrives), ListOffsets and OffsetForLeaderEpoch — plus hooks to answer errors,
// override answers and drop connections. Requests on a connection are served concurrently
// and answered in order, as a Kafka broker answers them; the in-flight count is the number
// received and not yet answered.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/logstore"
)

type tp = logstore.TopicPartition

type leaderPart struct {
	log    *logstore.Log
	epochs *EpochCache
	epoch  int32
	state  *LeaderState
}

type testLeader struct {
	t  *testing.T
	ln net.Listener
	id int32

	mu       sync.Mutex
	parts    map[tp]*leaderPart
	appended chan struct{} // closed and replaced on every append
	// Hooks, guarded by mu.
	fetchErrors   map[tp][]int16 // codes answered to the next fetches of a partition
	epochErrors   map[tp][]int16
	epochOverride func(p tp, requested int32) (EpochEndOffset, bool)
	dropAtFetch   int64         // close the connection when this fetch (1-based) arrives, unanswered
	fetchDelay    time.Duration // added to every fetch: a slower leader or network
	garbleAtFetch int64         // answer this fetch (1-based) with a malformed body
	conns         []net.Conn

	inflight    atomic.Int64
	maxInflight atomic.Int64
	fetches     atomic.Int64
	diverged    atomic.Int64
	epochReqs   atomic.Int64
	listReqs    atomic.Int64
	accepted    atomic.Int64
	wg          sync.WaitGroup
}

func startLeader(t *testing.T) *testLeader {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &testLeader{t: t, ln: ln, id: 1, parts: map[tp]*leaderPart{}, appended: make(chan struct{}),
		fetchErrors: map[tp][]int16{}, epochErrors: map[tp][]int16{}}
	l.wg.Add(1)
	go l.accept()
	t.Cleanup(l.close)
	return l
}

func (l *testLeader) addr() string { return l.ln.Addr().String() }

func (l *testLeader) close() {
	l.ln.Close()
	l.mu.Lock()
	for _, c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
	for _, p := range l.parts {
		p.log.Close()
	}
}

// addPartition creates a leader partition in epoch `epoch` whose ISR is the leader and the
// follower 2.
func (l *testLeader) addPartition(p tp, epoch int32, cfg logstore.Config) *leaderPart {
	l.t.Helper()
	lg, c := openReplica(l.t, filepath.Join(l.t.TempDir(), p.String()), cfg)
	lp := &leaderPart{log: lg, epochs: c}
	l.mu.Lock()
	l.parts[p] = lp
	l.mu.Unlock()
	l.becomeLeader(p, epoch)
	return lp
}

// becomeLeader starts a new leader epoch: the epoch starts at the log end offset.
func (l *testLeader) becomeLeader(p tp, epoch int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lp := l.parts[p]
	leo := lp.log.LogEndOffset()
	if err := lp.epochs.Assign(epoch, leo); err != nil {
		l.t.Fatal(err)
	}
	lp.epoch = epoch
	lp.state = NewLeaderState(LeaderConfig{LocalID: l.id, LeaderEpoch: epoch, Replicas: []int32{1, 2}, ISR: []int32{1, 2},
		HighWatermark: 0, LogEndOffset: leo, EpochStartOffset: leo, NowMs: time.Now().UnixMilli()})
}

// produce appends n batches of varied sizes in the partition's current epoch.
func (l *testLeader) produce(p tp, n int) {
	l.produceWith(p, n, func(i int) int { return 1 + i%5 })
}

// produceSingles appends n one-record batches: offsets are easy to place.
func (l *testLeader) produceSingles(p tp, n int) {
	l.produceWith(p, n, func(int) int { return 1 })
}

func (l *testLeader) produceWith(p tp, n int, records func(i int) int) {
	l.t.Helper()
	l.mu.Lock()
	lp := l.parts[p]
	l.mu.Unlock()
	for i := 0; i < n; i++ {
		b := testBatch(lp.log.LogEndOffset(), records(i), 10+(i*37)%300)
		var info logstore.AppendInfo
		if err := lp.log.AppendAsLeader(b, lp.epoch, false, &info); err != nil {
			l.t.Fatal(err)
		}
		lp.state.SetLocalLEO(lp.log.LogEndOffset())
	}
	l.mu.Lock()
	close(l.appended)
	l.appended = make(chan struct{})
	l.mu.Unlock()
}

func (l *testLeader) part(p tp) *leaderPart {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.parts[p]
}

func (l *testLeader) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.accepted.Add(1)
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
		l.wg.Add(1)
		go l.serveConn(c)
	}
}

// serveConn reads requests, serves each in its own goroutine and writes the answers in order.
func (l *testLeader) serveConn(c net.Conn) {
	defer l.wg.Done()
	defer c.Close()
	queue := make(chan chan []byte, 64)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		broken := false
		for out := range queue {
			b, ok := <-out
			l.inflight.Add(-1)
			switch {
			case broken:
			case !ok:
				c.Close() // a dropped request: the connection goes, unanswered
				broken = true
			default:
				_, err := c.Write(b)
				broken = err != nil
			}
		}
	}()
	defer func() {
		close(queue)
		<-writerDone
	}()
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		frame := make([]byte, binary.BigEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(c, frame); err != nil {
			return
		}
		if n := l.inflight.Add(1); n > l.maxInflight.Load() {
			l.maxInflight.Store(n) // one reader per connection: no lost update in these tests
		}
		out := make(chan []byte, 1)
		queue <- out
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.serveRequest(frame, out)
		}()
	}
}

func (l *testLeader) serveRequest(frame []byte, out chan []byte) {
	r := reader{b: frame}
	key, version, corr := r.int16(), r.int16(), r.int32()
	r.take(int(r.int16())) // client id
	var req kmsg.Request
	switch key {
	case int16(kmsg.Fetch):
		req = kmsg.NewPtrFetchRequest()
	case int16(kmsg.ListOffsets):
		req = kmsg.NewPtrListOffsetsRequest()
	case int16(kmsg.OffsetForLeaderEpoch):
		req = kmsg.NewPtrOffsetForLeaderEpochRequest()
	default:
		l.t.Errorf("test leader: unexpected api key %d", key)
		close(out)
		return
	}
	req.SetVersion(version)
	if req.IsFlexible() {
		r.skipTags()
	}
	if err := req.ReadFrom(r.b); r.bad || err != nil {
		l.t.Errorf("test leader: bad request key %d: %v", key, err)
		close(out)
		return
	}
	var resp kmsg.Response
	switch q := req.(type) {
	case *kmsg.FetchRequest:
		n := l.fetches.Add(1)
		l.mu.Lock()
		drop, delay, garble := l.dropAtFetch == n, l.fetchDelay, l.garbleAtFetch == n
		l.mu.Unlock()
		if garble {
			b := binary.BigEndian.AppendUint32(make([]byte, 4), uint32(corr))
			b = append(b, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff) // tags, then a short body
			binary.BigEndian.PutUint32(b, uint32(len(b)-4))
			out <- b
			return
		}
		if drop {
			close(out)
			return
		}
		time.Sleep(delay)
		resp = l.fetch(q)
	case *kmsg.ListOffsetsRequest:
		l.listReqs.Add(1)
		resp = l.listOffsets(q)
	case *kmsg.OffsetForLeaderEpochRequest:
		l.epochReqs.Add(1)
		resp = l.offsetForLeaderEpoch(q)
	}
	b := binary.BigEndian.AppendUint32(make([]byte, 4), uint32(corr))
	if resp.IsFlexible() {
		b = append(b, 0)
	}
	b = resp.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	out <- b
}

// fencing is Kafka's checkCurrentLeaderEpoch.
func fencing(cur, epoch int32) int16 {
	switch {
	case cur == -1 || cur == epoch:
		return 0
	case cur < epoch:
		return kerr.FencedLeaderEpoch.Code
	default:
		return kerr.UnknownLeaderEpoch.Code
	}
}

func (l *testLeader) popError(m map[tp][]int16, p tp) int16 {
	q := m[p]
	if len(q) == 0 {
		return 0
	}
	m[p] = q[1:]
	return q[0]
}

func (l *testLeader) fetch(q *kmsg.FetchRequest) *kmsg.FetchResponse {
	deadline := time.Now().Add(time.Duration(q.MaxWaitMillis) * time.Millisecond)
	for {
		l.mu.Lock()
		wake := l.appended
		l.mu.Unlock()
		resp, bytes, answerNow := l.readFetch(q)
		if answerNow || bytes >= int(q.MinBytes) || time.Now().After(deadline) {
			return resp
		}
		select {
		case <-wake:
		case <-time.After(time.Until(deadline)):
		}
	}
}

func (l *testLeader) readFetch(q *kmsg.FetchRequest) (*kmsg.FetchResponse, int, bool) {
	resp := kmsg.NewPtrFetchResponse()
	resp.SetVersion(q.Version)
	total, answerNow := 0, false
	for _, rt := range q.Topics {
		ot := kmsg.NewFetchResponseTopic()
		ot.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			op := kmsg.NewFetchResponseTopicPartition()
			op.Partition = rp.Partition
			op.HighWatermark, op.LastStableOffset, op.LogStartOffset = -1, -1, -1
			op.ErrorCode, op.RecordBatches = l.readPartition(q, tp{Topic: rt.Topic, Partition: rp.Partition}, &rp, &op, total == 0)
			total += len(op.RecordBatches)
			answerNow = answerNow || op.ErrorCode != 0 || op.DivergingEpoch.Epoch >= 0
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return resp, total, answerNow
}

func (l *testLeader) readPartition(q *kmsg.FetchRequest, p tp, rp *kmsg.FetchRequestTopicPartition, op *kmsg.FetchResponseTopicPartition, first bool) (int16, []byte) {
	l.mu.Lock()
	lp := l.parts[p]
	code := l.popError(l.fetchErrors, p)
	l.mu.Unlock()
	if lp == nil {
		return kerr.UnknownTopicOrPartition.Code, nil
	}
	if code != 0 {
		return code, nil
	}
	if code := fencing(rp.CurrentLeaderEpoch, lp.epoch); code != 0 {
		return code, nil
	}
	leo := lp.log.LogEndOffset()
	op.LogStartOffset = lp.log.LogStartOffset()
	div, diverging, code := lp.epochs.CheckFetch(rp.LastFetchedEpoch, rp.FetchOffset, leo)
	if code != 0 {
		return code, nil
	}
	if diverging {
		l.diverged.Add(1)
		op.DivergingEpoch.Epoch, op.DivergingEpoch.EndOffset = div.Epoch, div.EndOffset
		op.HighWatermark = lp.state.HighWatermark()
		op.LastStableOffset = op.HighWatermark
		return 0, nil
	}
	var res logstore.ReadResult
	defer res.Release()
	err := lp.log.Read(rp.FetchOffset, int64(min(rp.PartitionMaxBytes, q.MaxBytes)), leo, first, &res)
	if errors.Is(err, logstore.ErrOffsetOutOfRange) {
		return kerr.OffsetOutOfRange.Code, nil
	}
	if err != nil {
		return kerr.KafkaStorageError.Code, nil
	}
	lp.state.UpdateFollower(q.ReplicaID, rp.FetchOffset, leo, time.Now().UnixMilli())
	op.HighWatermark = lp.state.HighWatermark()
	op.LastStableOffset = op.HighWatermark
	recs := []byte{}
	for _, r := range res.Regions {
		recs = append(recs, r.Data...)
	}
	return 0, recs
}

func (l *testLeader) listOffsets(q *kmsg.ListOffsetsRequest) *kmsg.ListOffsetsResponse {
	resp := kmsg.NewPtrListOffsetsResponse()
	resp.SetVersion(q.Version)
	for _, rt := range q.Topics {
		ot := kmsg.NewListOffsetsResponseTopic()
		ot.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			op := kmsg.NewListOffsetsResponseTopicPartition()
			op.Partition = rp.Partition
			lp := l.part(tp{Topic: rt.Topic, Partition: rp.Partition})
			switch {
			case lp == nil:
				op.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case fencing(rp.CurrentLeaderEpoch, lp.epoch) != 0:
				op.ErrorCode = fencing(rp.CurrentLeaderEpoch, lp.epoch)
			case rp.Timestamp == -1 && q.ReplicaID >= 0:
				op.Offset, op.LeaderEpoch = lp.log.LogEndOffset(), lp.epoch
			case rp.Timestamp == -2:
				op.Offset, op.LeaderEpoch = lp.log.LogStartOffset(), lp.epoch
			default:
				op.ErrorCode = kerr.InvalidRequest.Code
			}
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return resp
}

func (l *testLeader) offsetForLeaderEpoch(q *kmsg.OffsetForLeaderEpochRequest) *kmsg.OffsetForLeaderEpochResponse {
	resp := kmsg.NewPtrOffsetForLeaderEpochResponse()
	resp.SetVersion(q.Version)
	for _, rt := range q.Topics {
		ot := kmsg.NewOffsetForLeaderEpochResponseTopic()
		ot.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			op := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			op.Partition = rp.Partition
			p := tp{Topic: rt.Topic, Partition: rp.Partition}
			l.mu.Lock()
			lp := l.parts[p]
			code := l.popError(l.epochErrors, p)
			override := l.epochOverride
			l.mu.Unlock()
			switch {
			case lp == nil:
				op.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case code != 0:
				op.ErrorCode = code
			case fencing(rp.CurrentLeaderEpoch, lp.epoch) != 0:
				op.ErrorCode = fencing(rp.CurrentLeaderEpoch, lp.epoch)
			default:
				op.LeaderEpoch, op.EndOffset = lp.epochs.EndOffsetFor(rp.LeaderEpoch, lp.log.LogEndOffset())
				if override != nil {
					if e, ok := override(p, rp.LeaderEpoch); ok {
						op.LeaderEpoch, op.EndOffset = e.Epoch, e.EndOffset
					}
				}
			}
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return resp
}

// Helpers shared by the tests.

func testConfig() logstore.Config {
	cfg := logstore.DefaultConfig()
	cfg.SegmentBytes = 16 << 10 // many segments: rolls on both sides
	cfg.PreallocateBytes = 64 << 10
	return cfg
}

func openReplica(t testing.TB, dir string, cfg logstore.Config) (*logstore.Log, *EpochCache) {
	t.Helper()
	lg, err := logstore.Open(dir, cfg, logstore.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := OpenEpochCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	return lg, c
}

// testBatch builds a batch of n records of valueLen bytes at base (epoch -1: the leader stamps
// its own, a test writing a follower's log directly stamps via AppendAsLeader).
func testBatch(base int64, n, valueLen int) []byte {
	recs := make([]logstore.Record, n)
	for i := range recs {
		v := make([]byte, valueLen)
		for j := range v {
			v[j] = byte(int(base) + i + j)
		}
		recs[i] = logstore.Record{Key: fmt.Appendf(nil, "k%d", base+int64(i)), Value: v, TimestampDelta: int64(i)}
	}
	return logstore.AppendBatch(nil, logstore.BatchSpec{BaseOffset: base, PartitionLeaderEpoch: -1,
		BaseTimestamp: 1_700_000_000_000 + base, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, Records: recs})
}

// logBytes returns every batch of the log, in order, as stored.
func logBytes(t testing.TB, lg *logstore.Log) []byte {
	t.Helper()
	var out []byte
	var res logstore.ReadResult
	for off := lg.LogStartOffset(); off < lg.LogEndOffset(); {
		if err := lg.Read(off, 1<<30, lg.LogEndOffset(), true, &res); err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Regions {
			out = append(out, r.Data...)
		}
		if res.NextOffset <= off {
			t.Fatalf("read at %d made no progress", off)
		}
		off = res.NextOffset
		res.Release()
	}
	return out
}

func testLogger() *slog.Logger {
	if os.Getenv("REPLICATION_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newTestFetcher(t *testing.T, addr string, mod func(*FetcherConfig)) *Fetcher {
	t.Helper()
	cfg := FetcherConfig{LocalID: 2, LeaderID: 1, Addr: addr, MaxWait: 100 * time.Millisecond,
		Backoff: 20 * time.Millisecond, RequestTimeout: 5 * time.Second, Logger: testLogger()}
	if mod != nil {
		mod(&cfg)
	}
	f := NewFetcher(cfg)
	t.Cleanup(func() { f.Close() })
	return f
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
