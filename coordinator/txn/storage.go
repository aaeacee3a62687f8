package txn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/logstore"
)

// Record versions written, as Kafka 3.x writes them (doc.go draws the layout).
const (
	keyVersion   = 0
	valueVersion = 0
)

// Why a record of __transaction_state is skipped on load.
var (
	errNotTxnKey = errors.New("not a transaction metadata key")
	errBadValue  = errors.New("bad transaction metadata value")
)

func stateKey(id string) []byte {
	k := kmsg.TxnMetadataKey{Version: keyVersion, TransactionalID: id}
	return k.AppendTo(nil)
}

// stateValue is TransactionLog.valueToBytes: partitions grouped by topic, null when Empty.
func stateValue(m *meta) []byte {
	if m.state == Empty && len(m.partitions) > 0 {
		panic(fmt.Sprintf("BUG: Empty transaction with %d partitions", len(m.partitions)))
	}
	v := kmsg.NewTxnMetadataValue()
	v.Version = valueVersion
	v.ProducerID, v.ProducerEpoch, v.TimeoutMillis = m.producerID, m.producerEpoch, m.timeoutMs
	v.State = kmsg.TransactionState(m.state)
	v.LastUpdateTimestamp, v.StartTimestamp = m.updateMs, m.startMs
	if m.state != Empty {
		v.Topics = []kmsg.TxnMetadataValueTopic{}
		for _, tp := range sortedPartitions(m.partitions) {
			if n := len(v.Topics); n == 0 || v.Topics[n-1].Topic != tp.Topic {
				v.Topics = append(v.Topics, kmsg.TxnMetadataValueTopic{Topic: tp.Topic})
			}
			last := &v.Topics[len(v.Topics)-1]
			last.Partitions = append(last.Partitions, tp.Partition)
		}
	}
	return v.AppendTo(nil)
}

// persist appends the record of m (nil: a tombstone) for t and returns a Kafka error code.
// A txn unloaded before or during the append (its partition is no longer served here) gets
// NOT_COORDINATOR, as Kafka's appendTransactionToLog answers when the coordinator epoch moved
// meanwhile: the caller installs nothing and the client asks the new coordinator. Caller
// holds t.mu.
func (c *Coordinator) persist(t *txn, m *meta) int16 {
	if t.gone.Load() {
		return errNotCoordinator
	}
	rec := logstore.Record{Key: stateKey(t.id)}
	if m != nil {
		rec.Value = stateValue(m)
	}
	batch := logstore.AppendBatch(nil, logstore.BatchSpec{
		BaseTimestamp: c.now(), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1,
		Records: []logstore.Record{rec},
	})
	if err := c.host.AppendState(t.partition, batch); err != nil {
		c.log.Warn("append transaction state", "transactional_id", t.id, "partition", t.partition, "err", err)
		return appendErrorCode(err)
	}
	if t.gone.Load() {
		return errNotCoordinator
	}
	return 0
}

// decodeRecord decodes one record of __transaction_state: the transactional id and its
// metadata, nil for a tombstone. errNotTxnKey: the key is not a TxnMetadataKey v0 (Kafka
// writes nothing else there); errBadValue: the value cannot be used.
func decodeRecord(key, value []byte) (string, *meta, error) {
	if len(key) < 2 || binary.BigEndian.Uint16(key) != keyVersion {
		return "", nil, errNotTxnKey
	}
	var k kmsg.TxnMetadataKey
	if err := k.ReadFrom(key); err != nil {
		return "", nil, fmt.Errorf("%w: %v", errNotTxnKey, err)
	}
	if value == nil {
		return k.TransactionalID, nil, nil
	}
	var v kmsg.TxnMetadataValue
	if err := v.ReadFrom(value); err != nil {
		return k.TransactionalID, nil, fmt.Errorf("%w: %v", errBadValue, err)
	}
	if v.Version < 0 || v.Version > 1 {
		return k.TransactionalID, nil, fmt.Errorf("%w: version %d", errBadValue, v.Version)
	}
	st := State(v.State)
	if st < Empty || st > CompleteAbort {
		return k.TransactionalID, nil, fmt.Errorf("%w: state %d", errBadValue, v.State)
	}
	m := &meta{
		producerID: v.ProducerID, lastProducerID: noProducerID,
		producerEpoch: v.ProducerEpoch, lastProducerEpoch: noProducerEpoch,
		timeoutMs: v.TimeoutMillis, state: st,
		startMs: v.StartTimestamp, updateMs: v.LastUpdateTimestamp,
	}
	if st == Ongoing || st.preparing() {
		m.partitions = map[TopicPartition]struct{}{}
		for _, t := range v.Topics {
			for _, p := range t.Partitions {
				m.partitions[TopicPartition{t.Topic, p}] = struct{}{}
			}
		}
	}
	return k.TransactionalID, m, nil
}

// load reads every partition of the state topic, installs the latest state of each
// transactional id, and completes the transactions found preparing. Caller holds ensureMu.
func (c *Coordinator) load(partitions int32) error {
	c.loading.Store(true)
	defer c.loading.Store(false)
	start := time.Now()
	loaded := map[string]*meta{}
	for p := int32(0); p < partitions; p++ {
		l := c.host.StateLog(p)
		if l == nil {
			return fmt.Errorf("load %s-%d: no log", TopicName, p)
		}
		if err := c.loadPartition(p, l, loaded); err != nil {
			return fmt.Errorf("load %s-%d: %w", TopicName, p, err)
		}
	}
	var resume []*txn
	c.mu.Lock()
	c.partitions = partitions
	for id, m := range loaded {
		if m == nil {
			continue // tombstone
		}
		t := &txn{id: id, partition: partitionFor(id, partitions), meta: *m}
		c.txns[id] = t
		c.metrics.byState[m.state].Add(1)
		if m.state.preparing() {
			resume = append(resume, t)
		}
	}
	n := len(c.txns)
	c.mu.Unlock()
	c.ready.Store(true)
	c.log.Info("loaded transactions", "topic", TopicName, "partitions", partitions, "transactional_ids", n, "preparing", len(resume), "took", time.Since(start))
	for _, t := range resume {
		t.mu.Lock()
		m := t.meta
		t.mu.Unlock()
		c.goFinish(t, m)
	}
	return nil
}

func (c *Coordinator) loadPartition(p int32, l *logstore.Log, loaded map[string]*meta) error {
	var res logstore.ReadResult
	defer res.Release()
	var h logstore.BatchHeader
	from, end := l.LogStartOffset(), l.LogEndOffset()
	for from < end {
		if err := l.Read(from, c.cfg.LoadBufferBytes, end, true, &res); err != nil {
			if errors.Is(err, logstore.ErrOffsetOutOfRange) {
				return nil
			}
			return err
		}
		if len(res.Regions) == 0 {
			return nil
		}
		for _, r := range res.Regions {
			for b := r.Data; len(b) >= logstore.BatchHeaderSize; {
				logstore.ParseBatchHeader(b, &h)
				if h.Size() > len(b) || h.Size() < logstore.BatchHeaderSize {
					return fmt.Errorf("batch at offset %d: bad length", h.BaseOffset)
				}
				batch := b[:h.Size()]
				b = b[h.Size():]
				if h.IsControl() {
					continue
				}
				if err := c.loadBatch(p, batch, &h, loaded); err != nil {
					return err
				}
			}
		}
		from = res.NextOffset
		res.Release()
	}
	return nil
}

func (c *Coordinator) loadBatch(p int32, batch []byte, h *logstore.BatchHeader, loaded map[string]*meta) error {
	recs := batch[logstore.BatchHeaderSize:]
	if codec := h.Compression(); codec != 0 {
		if !logstore.CanDecompress() {
			return fmt.Errorf("batch at offset %d: compressed and no codec", h.BaseOffset)
		}
		plain, err := logstore.Decompress(codec, recs, nil)
		if err != nil {
			return fmt.Errorf("batch at offset %d: %w", h.BaseOffset, err)
		}
		recs = plain
	}
	if !forEachKeyValue(recs, h.RecordCount, func(key, value []byte) {
		id, m, err := decodeRecord(key, value)
		if err != nil {
			c.log.Warn("transaction state topic: record skipped", "partition", p, "transactional_id", id, "err", err)
			return
		}
		loaded[id] = m
	}) {
		return fmt.Errorf("batch at offset %d: malformed records", h.BaseOffset)
	}
	return nil
}

// forEachKeyValue decodes the plain records section of a batch and calls fn with each record's
// key and value (nil when null). It returns false on malformed input.
//
//	length varint | attributes int8 | timestampDelta varlong | offsetDelta varint |
//	keyLength varint | key | valueLength varint | value | headers
func forEachKeyValue(recs []byte, count int32, fn func(key, value []byte)) bool {
	for i := int32(0); i < count; i++ {
		length, n := binary.Varint(recs)
		if n <= 0 || length < 0 || int64(len(recs)-n) < length {
			return false
		}
		body := recs[n : n+int(length)]
		recs = recs[n+int(length):]
		if len(body) < 1 {
			return false
		}
		body = body[1:]
		for j := 0; j < 2; j++ { // timestamp delta, offset delta
			_, n := binary.Varint(body)
			if n <= 0 {
				return false
			}
			body = body[n:]
		}
		key, rest, ok := varBytes(body)
		if !ok {
			return false
		}
		value, _, ok := varBytes(rest)
		if !ok {
			return false
		}
		fn(key, value)
	}
	return true
}

// varBytes reads varint-length-prefixed bytes; length -1 is null (nil).
func varBytes(b []byte) ([]byte, []byte, bool) {
	l, n := binary.Varint(b)
	if n <= 0 || l < -1 || int64(len(b)-n) < l {
		return nil, nil, false
	}
	b = b[n:]
	if l < 0 {
		return nil, b, true
	}
	return b[:l:l], b[l:], true
}
