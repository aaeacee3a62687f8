package coordinator

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/logstore"
)

// Record versions written, as Kafka 3.x/4.x writes them.
const (
	offsetKeyVersion        = 1
	groupKeyVersion         = 2
	offsetValueVersion      = 3
	offsetValueVersionOld   = 1 // with an expire timestamp (OffsetCommit v2-v4 retention)
	groupValueVersion       = 3
	maxTombstoneBatchBytes  = 512 << 10
	recordOverheadEstimated = 32
)

func offsetKey(group string, tp topicPartition) []byte {
	k := kmsg.OffsetCommitKey{Version: offsetKeyVersion, Group: group, Topic: tp.topic, Partition: tp.partition}
	return k.AppendTo(nil)
}

func groupKey(group string) []byte {
	k := kmsg.GroupMetadataKey{Version: groupKeyVersion, Group: group}
	return k.AppendTo(nil)
}

func offsetValue(o *offset) []byte {
	v := kmsg.NewOffsetCommitValue()
	v.Version = offsetValueVersion
	v.Offset, v.LeaderEpoch, v.Metadata, v.CommitTimestamp = o.offset, o.leaderEpoch, o.metadata, o.commitMs
	if o.expireMs >= 0 {
		v.Version = offsetValueVersionOld
		v.ExpireTimestamp = o.expireMs
	}
	return v.AppendTo(nil)
}

// groupValue is the group's metadata record with the given assignment (nil for none).
func (g *group) groupValue(assignment map[string][]byte) []byte {
	v := kmsg.NewGroupMetadataValue()
	v.Version = groupValueVersion
	v.ProtocolType = g.protocolType
	v.Generation = g.generation
	v.Protocol = strPtrOrNil(g.protocolName)
	v.Leader = strPtrOrNil(g.leader)
	v.CurrentStateTimestamp = g.stateMs
	for _, m := range g.sortedMembers() {
		vm := kmsg.NewGroupMetadataValueMember()
		vm.MemberID, vm.InstanceID, vm.ClientID, vm.ClientHost = m.id, m.instanceID, m.clientID, m.clientHost
		vm.RebalanceTimeoutMillis = int32(m.rebalanceTimeout / time.Millisecond)
		vm.SessionTimeoutMillis = int32(m.sessionTimeout / time.Millisecond)
		vm.Subscription = m.metadata(g.protocolName)
		if vm.Subscription == nil {
			vm.Subscription = []byte{}
		}
		vm.Assignment = assignment[m.id]
		if vm.Assignment == nil {
			vm.Assignment = []byte{}
		}
		v.Members = append(v.Members, vm)
	}
	return v.AppendTo(nil)
}

// store writes the group's metadata (storeGroup) and returns a Kafka error code.
func (g *group) store(assignment map[string][]byte) int16 {
	return appendErrorCode(g.c.appendRecords(g.partition, []logstore.Record{{Key: groupKey(g.id), Value: g.groupValue(assignment)}}))
}

// appendRecords writes records to a partition of the offsets topic as one batch.
func (c *Coordinator) appendRecords(partition int32, recs []logstore.Record) error {
	if len(recs) == 0 {
		return nil
	}
	batch := logstore.AppendBatch(nil, logstore.BatchSpec{
		BaseTimestamp: nowMs(), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, Records: recs,
	})
	return c.host.AppendOffsets(partition, batch)
}

// appendTombstones writes records in batches of bounded size (deletions need not be atomic).
func (c *Coordinator) appendTombstones(partition int32, recs []logstore.Record) error {
	for len(recs) > 0 {
		n, size := 0, 0
		for n < len(recs) && (n == 0 || size+len(recs[n].Key)+recordOverheadEstimated <= maxTombstoneBatchBytes) {
			size += len(recs[n].Key) + recordOverheadEstimated
			n++
		}
		if err := c.appendRecords(partition, recs[:n]); err != nil {
			return err
		}
		recs = recs[n:]
	}
	return nil
}

// loadedGroup collects what one group's records say while a partition is replayed.
type loadedGroup struct {
	meta    *kmsg.GroupMetadataValue // nil: none, or deleted
	offsets map[topicPartition]*offset
	cg      *loadedConsumer // consumer group records, if any
	// pending holds transactional offset commits whose marker has not been read yet, by
	// producer id; a commit marker moves them into offsets, an abort drops them.
	pending map[int64]map[topicPartition]*offset
}

// empty reports whether the records leave nothing of the group.
func (lg *loadedGroup) empty() bool {
	return lg.meta == nil && len(lg.offsets) == 0 && len(lg.pending) == 0 && (lg.cg == nil || !lg.cg.hasMeta)
}

// load reads every partition of the offsets topic and installs the groups found.
func (c *Coordinator) load(partitions int32) error {
	start := time.Now()
	loaded := map[string]*loadedGroup{}
	for p := int32(0); p < partitions; p++ {
		l := c.host.OffsetsLog(p)
		if l == nil {
			return fmt.Errorf("load %s-%d: no log", OffsetsTopic, p)
		}
		if err := c.loadPartition(p, l, loaded); err != nil {
			return fmt.Errorf("load %s-%d: %w", OffsetsTopic, p, err)
		}
	}
	c.mu.Lock()
	c.partitions = partitions
	c.mu.Unlock()
	groups, offsets := 0, 0
	for id, lg := range loaded {
		if lg.empty() {
			continue
		}
		c.installLoaded(id, lg)
		groups++
		offsets += len(lg.offsets)
	}
	c.ready.Store(true)
	c.log.Info("loaded groups", "topic", OffsetsTopic, "partitions", partitions, "groups", groups, "offsets", offsets, "took", time.Since(start))
	return nil
}

func (c *Coordinator) loadPartition(p int32, l *logstore.Log, loaded map[string]*loadedGroup) error {
	var res logstore.ReadResult
	defer res.Release()
	var h logstore.BatchHeader
	var txnGroups map[int64]map[string]bool // producer id -> groups with pending offsets
	var pending map[string]bool
	from, end := l.LogStartOffset(), l.LogEndOffset()
	for from < end {
		if err := l.Read(from, c.cfg.OffsetsLoadBufferBytes, end, true, &res); err != nil {
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
					if commit, ok := logstore.ControlMarker(batch); ok {
						completeLoadedTxn(loaded, txnGroups[h.ProducerID], h.ProducerID, commit)
						delete(txnGroups, h.ProducerID)
					}
					continue
				}
				if h.IsTransactional() {
					if txnGroups == nil {
						txnGroups = map[int64]map[string]bool{}
					}
					if txnGroups[h.ProducerID] == nil {
						txnGroups[h.ProducerID] = map[string]bool{}
					}
					pending = txnGroups[h.ProducerID]
				}
				err := c.loadBatch(p, batch, &h, loaded, pending)
				pending = nil
				if err != nil {
					return err
				}
			}
		}
		from = res.NextOffset
		res.Release()
	}
	return nil
}

// loadBatch applies a batch's records. A transactional batch (txnGroups non-nil) holds
// offset commits that stay pending, under its producer id, until the transaction's marker; the
// groups it touches are added to txnGroups.
func (c *Coordinator) loadBatch(p int32, batch []byte, h *logstore.BatchHeader, loaded map[string]*loadedGroup, txnGroups map[string]bool) error {
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
	pid := int64(-1)
	if txnGroups != nil {
		pid = h.ProducerID
	}
	if !forEachKeyValue(recs, h.RecordCount, func(key, value []byte) {
		if g := c.loadRecord(p, key, value, loaded, pid); g != "" && txnGroups != nil {
			txnGroups[g] = true
		}
	}) {
		return fmt.Errorf("batch at offset %d: malformed records", h.BaseOffset)
	}
	return nil
}

// loadRecord applies one record of the offsets topic to what is being loaded. An offset
// commit of a transaction (pid >= 0) is kept pending; its group's id is returned.
func (c *Coordinator) loadRecord(p int32, key, value []byte, loaded map[string]*loadedGroup, pid int64) (txnGroup string) {
	if len(key) < 2 {
		c.log.Warn("offsets topic: record without key", "partition", p)
		return ""
	}
	get := func(id string) *loadedGroup {
		lg := loaded[id]
		if lg == nil {
			lg = &loadedGroup{offsets: map[topicPartition]*offset{}}
			loaded[id] = lg
		}
		return lg
	}
	switch v := int16(binary.BigEndian.Uint16(key)); v {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		if err := k.ReadFrom(key); err != nil {
			c.log.Warn("offsets topic: bad offset key", "partition", p, "err", err)
			return
		}
		tp := topicPartition{k.Topic, k.Partition}
		lg := get(k.Group)
		if value == nil {
			delete(lg.offsets, tp)
			return ""
		}
		var val kmsg.OffsetCommitValue
		if err := val.ReadFrom(value); err != nil {
			c.log.Warn("offsets topic: bad offset value", "partition", p, "group", k.Group, "err", err)
			return ""
		}
		o := &offset{offset: val.Offset, leaderEpoch: -1, metadata: val.Metadata, commitMs: val.CommitTimestamp, expireMs: -1}
		if val.Version >= 3 {
			o.leaderEpoch = val.LeaderEpoch
		}
		if val.Version == 1 {
			o.expireMs = val.ExpireTimestamp
		}
		if pid >= 0 {
			if lg.pending == nil {
				lg.pending = map[int64]map[topicPartition]*offset{}
			}
			if lg.pending[pid] == nil {
				lg.pending[pid] = map[topicPartition]*offset{}
			}
			lg.pending[pid][tp] = o
			return k.Group
		}
		lg.offsets[tp] = o
	case 2:
		var k kmsg.GroupMetadataKey
		if err := k.ReadFrom(key); err != nil {
			c.log.Warn("offsets topic: bad group key", "partition", p, "err", err)
			return ""
		}
		lg := get(k.Group)
		if value == nil {
			lg.meta = nil
			return ""
		}
		var val kmsg.GroupMetadataValue
		if err := val.ReadFrom(value); err != nil {
			c.log.Warn("offsets topic: bad group value", "partition", p, "group", k.Group, "err", err)
			return ""
		}
		lg.meta = &val
	default:
		c.loadConsumerRecord(p, v, key, value, get) // KIP-848 records (share groups: skipped)
	}
	return ""
}

// completeLoadedTxn applies a marker read while loading to the groups holding pending offsets
// of the producer.
func completeLoadedTxn(loaded map[string]*loadedGroup, groups map[string]bool, pid int64, commit bool) {
	for id := range groups {
		lg := loaded[id]
		if lg == nil || lg.pending == nil {
			continue
		}
		if commit {
			for tp, o := range lg.pending[pid] {
				lg.offsets[tp] = o
			}
		}
		delete(lg.pending, pid)
	}
}

// installLoaded creates a loaded group (buildLoaded) in the map and starts its timers.
func (c *Coordinator) installLoaded(id string, lg *loadedGroup) {
	c.mu.Lock()
	p := c.partitionForLocked(id)
	c.mu.Unlock()
	g := c.buildLoaded(id, p, lg)
	c.mu.Lock()
	c.groups[id] = g
	c.mu.Unlock()
	g.mu.Lock()
	defer g.unlock()
	for pid := range g.pendingTxn {
		c.addTxnGroup(pid, g.id)
	}
	g.startLoaded()
}

// buildLoaded makes the group that a partition's records describe: Stable with its members,
// else Empty; a consumer group as its records say. It is in no map and its timers are not
// running (startLoaded).
func (c *Coordinator) buildLoaded(id string, partition int32, lg *loadedGroup) *group {
	g := newGroup(c, id, partition)
	g.mu.Lock()
	defer g.unlock()
	g.offsets = lg.offsets
	for pid, offs := range lg.pending {
		if len(offs) > 0 {
			g.pendingTxn[pid] = offs
		}
	}
	c.metrics.offsets.Add(int64(len(lg.offsets)))
	if lg.meta == nil {
		g.installConsumer(lg.cg)
		return g
	}
	md := lg.meta
	g.protocolType, g.generation = md.ProtocolType, md.Generation
	if md.Protocol != nil {
		g.protocolName = *md.Protocol
	}
	if md.CurrentStateTimestamp > 0 {
		g.stateMs = md.CurrentStateTimestamp
	}
	for _, vm := range md.Members {
		m := &member{
			id: vm.MemberID, instanceID: vm.InstanceID, clientID: vm.ClientID, clientHost: vm.ClientHost,
			rebalanceTimeout: time.Duration(vm.RebalanceTimeoutMillis) * time.Millisecond,
			sessionTimeout:   time.Duration(vm.SessionTimeoutMillis) * time.Millisecond,
			protocolType:     md.ProtocolType,
			protocols:        []protocol{{name: g.protocolName, metadata: vm.Subscription}},
			assignment:       vm.Assignment,
		}
		if vm.RebalanceTimeoutMillis < 0 {
			m.rebalanceTimeout = m.sessionTimeout // v0 records have none
		}
		g.add(m, nil)
	}
	if md.Leader != nil && g.members[*md.Leader] != nil {
		g.leader = *md.Leader
	}
	g.subscribed = g.computeSubscribed()
	if len(g.members) == 0 {
		return g
	}
	stateMs := g.stateMs
	g.c.metrics.byState[Empty].Add(-1)
	g.c.metrics.byState[Stable].Add(1)
	g.state = Stable
	g.stateMs = stateMs
	return g
}

// startLoaded starts the timers of a loaded group: its members' sessions (and the rebalance
// timeout of consumer group members revoking). Caller holds g.mu.
func (g *group) startLoaded() {
	if g.cg != nil {
		g.cg.startTimers()
		return
	}
	if g.state != Stable {
		return
	}
	for _, m := range g.members {
		g.scheduleHeartbeat(m, m.sessionTimeout)
	}
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
