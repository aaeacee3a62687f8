package broker

// Produce v0–v11. v0–v2 are advertised because older librdkafka builds stop compressing when
// the minimum is above 0 (compat-traps.md), but their message formats (magic 0/1) are answered
// with UNSUPPORTED_FOR_MESSAGE_FORMAT, as Kafka 4 does. acks=0 gets no response; acks=1 and
// acks=all are answered after the append (a single node is the whole ISR; acks=all fails with
// NOT_ENOUGH_REPLICAS when min.insync.replicas is above it).
//
// Each partition's record set is validated and appended by logstore (one copy into the
// segment's mapping). Idempotent batches are checked against the producer state under the
// partition's lock; a retried batch is answered with its original offsets.

// The request is decoded by hand into a pooled, reused structure (record sets are views of the
// frame: they are appended before Serve returns) and the response is encoded by hand into a
// pooled buffer: the steady-state produce path allocates nothing.
//
// Request:  transactional_id (nullable string) | acks i16 | timeout_ms i32 |
//           topics[ name | partitions[ index i32 | records (nullable bytes) | [tags] ] | [tags] ] | [tags]
// Response: topics[ name | partitions[ index i32 | error_code i16 | base_offset i64 |
//           log_append_time_ms i64 | log_start_offset i64 (v5+) | record_errors[] (v8+) |
//           error_message (v8+) | [tags] ] | [tags] ] | throttle_time_ms i32 | [tags]

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/spate-broker/spate/logstore"
	"github.com/spate-broker/spate/netio"
)

type prodPart struct {
	index      int32
	records    []byte
	errCode    int16
	base       int64
	appendTime int64
	logStart   int64
}

type prodTopic struct {
	name  []byte
	parts []prodPart
}

// produceState is one produce request in flight; pooled.
type produceState struct {
	txn       bool
	txnID     []byte // the transactional id (a view of the frame, valid while produceTo runs)
	acks      int16
	topics    []prodTopic
	buf       []byte
	resp      netio.Response
	flush     []*partition // partitions whose flush.messages was reached by this request
	names     []byte       // topic names owned by st (see ownNames)
	releaseFn func()       // st.release, bound once so replying allocates nothing
	// frame is the request being served while the partitions are appended in Serve (nil
	// after, and for deferred batches): batch CRCs are summed from the checksums netio took
	// as its bytes arrived. crcFn is st.batchCRC, bound once.
	frame     *netio.Request
	crcFn     func([]byte) uint32
	timeoutMs int32

	// Batches deferred for verification by a remote transaction coordinator
	// (txn_verify.go): their copies in deferBuf; verified is set while they are appended.
	deferred        []deferredBatch
	deferBuf        []byte
	verified        bool
	verifiedMarkers uint64 // with verified: the partition's marker count when deferred
	txnIDBuf        []byte // st.txnID's own copy for a deferred request

	// acks=all in cluster mode (ackwait.go).
	waits     []ackWait
	ackMu     sync.Mutex
	ackLeft   int    // waits not done; guarded by ackMu
	ackGen    uint64 // guarded by ackMu: tells a stale timer from the current one
	ackTimer  *time.Timer
	ackConn   *netio.Conn
	ackSeq    netio.Seq
	ackHeader reqHeader
}

var producePool sync.Pool

func newProduceState() any {
	st := &produceState{}
	st.releaseFn = st.release
	st.crcFn = st.batchCRC
	return st
}

// batchCRC returns the CRC-32C of data, a stretch of a batch in the request being served,
// from netio's chunk checksums (st.frame is set).
func (st *produceState) batchCRC(data []byte) uint32 { return st.frame.CRC32C(data) }

func (st *produceState) release() {
	st.resp.Parts = st.resp.Parts[:0]
	if cap(st.buf) > 1<<20 {
		st.buf = nil // never pool an oversized buffer
	}
	if cap(st.deferBuf) > 1<<20 {
		st.deferBuf = nil
	}
	producePool.Put(st)
}

// decode parses a produce request body into st, reusing its slices.
func (st *produceState) decode(body []byte, version int16) bool {
	flex := version >= 9
	r := reader{b: body}
	st.txn = false
	if version >= 3 {
		st.txnID, st.txn = r.str(flex)
	}
	st.acks = r.int16()
	st.timeoutMs = r.int32()
	nt := r.arrayLen(flex)
	st.topics = st.topics[:0]
	for i := 0; i < nt && !r.bad; i++ {
		if len(st.topics) < cap(st.topics) {
			st.topics = st.topics[:i+1]
		} else {
			st.topics = append(st.topics, prodTopic{})
		}
		t := &st.topics[i]
		t.name, _ = r.str(flex)
		np := r.arrayLen(flex)
		t.parts = t.parts[:0]
		for j := 0; j < np && !r.bad; j++ {
			t.parts = append(t.parts, prodPart{index: r.int32(), records: r.bytes(flex)})
			r.skipTags(flex)
		}
		r.skipTags(flex)
	}
	r.skipTags(flex)
	return !r.bad
}

// ownNames copies the topic names (views of the request frame) into st's own buffer, for a
// response answered after Serve returned.
func (st *produceState) ownNames() {
	n := 0
	for i := range st.topics {
		n += len(st.topics[i].name)
	}
	if cap(st.names) < n {
		st.names = make([]byte, 0, n)
	}
	st.names = st.names[:0]
	for i := range st.topics {
		t := &st.topics[i]
		from := len(st.names)
		st.names = append(st.names, t.name...)
		t.name = st.names[from:len(st.names):len(st.names)]
	}
}

func (st *produceState) encode(correlation int32, version int16) {
	flex := version >= 9
	b := st.buf[:0]
	b = binary.BigEndian.AppendUint32(b, uint32(correlation))
	if flex {
		b = append(b, 0)
	}
	b = appendArrayLen(b, len(st.topics), flex)
	for i := range st.topics {
		t := &st.topics[i]
		b = appendStringBytes(b, t.name, flex)
		b = appendArrayLen(b, len(t.parts), flex)
		for j := range t.parts {
			p := &t.parts[j]
			b = binary.BigEndian.AppendUint32(b, uint32(p.index))
			b = binary.BigEndian.AppendUint16(b, uint16(p.errCode))
			b = binary.BigEndian.AppendUint64(b, uint64(p.base))
			b = binary.BigEndian.AppendUint64(b, uint64(p.appendTime))
			if version >= 5 {
				b = binary.BigEndian.AppendUint64(b, uint64(p.logStart))
			}
			if version >= 8 {
				b = appendArrayLen(b, 0, flex) // record_errors
				b = appendNullString(b, flex)  // error_message
			}
			if flex {
				b = append(b, 0)
			}
		}
		if flex {
			b = append(b, 0)
		}
	}
	b = binary.BigEndian.AppendUint32(b, 0) // throttle_time_ms
	if flex {
		b = append(b, 0)
	}
	st.buf = b
}

func appendStringBytes(b, s []byte, flex bool) []byte {
	if flex {
		b = binary.AppendUvarint(b, uint64(len(s))+1)
	} else {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	}
	return append(b, s...)
}

func appendNullString(b []byte, flex bool) []byte {
	if flex {
		return append(b, 0)
	}
	return append(b, 0xff, 0xff)
}

func init() {
	producePool.New = newProduceState
	apis[0] = api{min: 0, max: 11, flexible: 9, serve: func(b *Broker, c *netio.Conn, seq netio.Seq, h *reqHeader, body []byte) {
		st := producePool.Get().(*produceState)
		if !st.decode(body, h.version) {
			producePool.Put(st)
			b.metrics.malformed.Inc()
			c.Close()
			return
		}
		st.frame = h.req
		for i := range st.topics {
			t := &st.topics[i]
			for j := range t.parts {
				p := &t.parts[j]
				p.base, p.appendTime, p.logStart = -1, -1, -1
				p.errCode = b.produceTo(st, t.name, p)
				if p.errCode != 0 && p.errCode != errVerifyRemote {
					b.metrics.failed(0)
				}
			}
		}
		st.frame = nil
		if len(st.deferred) > 0 {
			// Verification by a remote transaction coordinator: finished off the loop.
			st.ownNames()
			b.finishDeferred(c, seq, h, st)
			return
		}
		if len(st.flush) > 0 {
			// flush.messages reached: sync off the event loop, then answer.
			hc := *h
			st.ownNames() // the frame is gone once Serve returns
			go b.flushAndAnswer(c, seq, &hc, st)
			return
		}
		if len(st.waits) > 0 {
			st.ownNames()
			b.awaitAcks(c, seq, h, st)
			return
		}
		b.finishProduce(c, seq, h, st)
	}}
}

// flushAndAnswer syncs the partitions whose flush.messages the request reached, then
// answers it (after its acks=all waits). Off the event loop only: it syncs.
func (b *Broker) flushAndAnswer(c *netio.Conn, seq netio.Seq, h *reqHeader, st *produceState) {
	for i, p := range st.flush {
		if err := p.log.Sync(); err != nil {
			b.log.Error("flush", "partition", p.tp.String(), "err", err)
		}
		st.flush[i] = nil
	}
	st.flush = st.flush[:0]
	if len(st.waits) > 0 {
		b.awaitAcks(c, seq, h, st)
		return
	}
	b.finishProduce(c, seq, h, st)
}

func (b *Broker) finishProduce(c *netio.Conn, seq netio.Seq, h *reqHeader, st *produceState) {
	if st.acks == 0 {
		c.NoReply(seq)
		producePool.Put(st)
		return
	}
	st.encode(h.correlation, h.version)
	st.resp.AppendBytes(st.buf)
	st.resp.Release = st.releaseFn
	b.metrics.done(h)
	c.Reply(seq, st.resp)
}

func (b *Broker) produceTo(st *produceState, topicName []byte, pp *prodPart) int16 {
	if st.acks != 0 && st.acks != 1 && st.acks != -1 {
		return errInvalidRequiredAcks
	}
	p := b.topics.partitionBytes(topicName, pp.index)
	if p == nil {
		return errUnknownTopicOrPartition
	}
	if isInternalTopic(p.tp.Topic) {
		return errInvalidTopicException // only the broker writes internal topics
	}
	b.metrics.bytesIn.Add(len(pp.records))
	return b.produceToPartition(st, p, pp)
}

// produceToPartition validates and appends pp's records to p (leader only) under its lock.
func (b *Broker) produceToPartition(st *produceState, p *partition, pp *prodPart) int16 {
	records := pp.records
	if !p.isLeader() {
		return errNotLeaderOrFollower
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if st.acks == -1 && p.isrSize() < p.minISR {
		return errNotEnoughReplicas
	}
	var bh logstore.BatchHeader
	var err error
	if st.frame != nil {
		err = logstore.CheckBatchCRC(records, 0, &bh, st.crcFn)
	} else { // a deferred batch, a copy: summed from its bytes
		err = logstore.CheckBatch(records, 0, &bh)
	}
	if err != nil {
		return logstore.CodeOf(err)
	}
	if len(records) != bh.Size() && bh.ProducerID >= 0 {
		return errInvalidRecord // an idempotent produce carries exactly one batch
	}
	if bh.IsTransactional() {
		if code := b.verifyTxnProduceLocked(st, p, &bh); code == errVerifyRemote {
			st.deferVerify(p, pp, &bh)
			return code
		} else if code != 0 {
			return code
		}
	}
	dup, code := p.checkSequenceLocked(&bh)
	if code != 0 {
		return code
	}
	if dup != nil {
		pp.base = dup.FirstOffset
		pp.logStart = p.log.LogStartOffset()
		if p.logAppendTime {
			pp.appendTime = dup.Timestamp
		}
		// A retry is answered as its original was: with acks=all, only once that batch is
		// committed (the first attempt may have been appended and never replicated).
		return st.awaitReplication(p, pp, dup.LastOffset)
	}
	began := p.maybeBeginTxnLocked(&bh)
	var info logstore.AppendInfo
	if err := p.log.AppendCheckedAsLeader(records, p.leaderEpoch.Load(), &info); err != nil { // CheckBatch above
		if began {
			p.endTxnLocked(bh.ProducerID)
		}
		return logstore.CodeOf(err)
	}
	p.recordBatchLocked(&bh, info.FirstOffset, info.LastOffset, info.MaxTimestamp)
	pp.base = info.FirstOffset
	pp.appendTime = info.LogAppendTime
	pp.logStart = info.LogStartOffset
	if info.FlushNeeded {
		st.flush = append(st.flush, p)
	}
	p.wake()
	return st.awaitReplication(p, pp, info.LastOffset)
}

// awaitReplication makes an acks=all answer for a batch ending at last wait for the high
// watermark to pass it (cluster mode). When leadership was lost while the batch was being
// appended the answer is NOT_LEADER_OR_FOLLOWER: the batch may be truncated by the new
// leader, so it must not be acknowledged.
func (st *produceState) awaitReplication(p *partition, pp *prodPart, last int64) int16 {
	if st.acks != -1 || p.b.cluster == nil {
		return 0
	}
	if p.repl.leader.Load() == nil || !p.isLeader() {
		pp.base = -1
		return errNotLeaderOrFollower
	}
	if p.highWatermark() <= last {
		st.addAckWait(p, pp, last+1)
	}
	return 0
}
