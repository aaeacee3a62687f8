package coordinator

// Records of consumer groups in __consumer_offsets. kmsg has no codec for them, so they are
// encoded here after Kafka's schemas (group-coordinator/src/main/resources/common/message, as
// of Kafka 4.0): a key is its record type (int16) then its fields, not flexible (strings with
// an int16 length); a value is its version (int16, 0) then its fields in the flexible
// encoding (compact strings and arrays: unsigned varint length + 1, 0 for null; uuids as 16
// bytes) ending with a tagged-field section.
//
//	type  key                          value (version 0)
//	3     ConsumerGroupMetadataKey     ConsumerGroupMetadataValue: epoch i32 |
//	      group                        tags {0: metadata_hash i64 (of our topicsHash)}
//	5     ConsumerGroupMemberMetadata  ConsumerGroupMemberMetadataValue: instance_id? | rack_id? |
//	      group | member               client_id | client_host | subscribed_topic_names [string] |
//	                                   subscribed_topic_regex? | rebalance_timeout_ms i32 |
//	                                   server_assignor? | tags {0: classic_member_metadata, a
//	                                   nullable struct, present for a member of the classic
//	                                   protocol (migration.go): 1 (not null, uvarint) |
//	                                   session_timeout_ms i32 | supported_protocols [name |
//	                                   metadata bytes | tags] | tags}
//	6     ConsumerGroupTargetAssign-   ConsumerGroupTargetAssignmentMetadataValue:
//	      mentMetadataKey: group       assignment_epoch i32 | tags
//	7     ConsumerGroupTargetAssign-   ConsumerGroupTargetAssignmentMemberValue:
//	      mentMemberKey: group|member  topic_partitions [topic_id uuid | partitions [i32] |
//	                                   tags] | tags
//	8     ConsumerGroupCurrentMember-  ConsumerGroupCurrentMemberAssignmentValue: member_epoch i32 |
//	      AssignmentKey: group|member  previous_member_epoch i32 | state i8 | assigned_partitions
//	                                   [topic_partitions] | partitions_pending_revocation
//	                                   [topic_partitions] | tags
//
// A null value deletes the key. Types 4 (subscription metadata) and 16 (regex resolutions) are
// neither written nor read; unknown tagged fields are skipped.

import (
	"encoding/binary"
	"errors"
	"time"
)

// Record types (the key's version) of consumer groups.
const (
	cgMetadataType          int16 = 3
	cgMemberType            int16 = 5
	cgTargetMetadataType    int16 = 6
	cgTargetMemberType      int16 = 7
	cgCurrentAssignmentType int16 = 8
)

// writer builds a record.
type writer []byte

func (w writer) i8(v int8) writer   { return append(w, byte(v)) }
func (w writer) i16(v int16) writer { return binary.BigEndian.AppendUint16(w, uint16(v)) }
func (w writer) i32(v int32) writer { return binary.BigEndian.AppendUint32(w, uint32(v)) }
func (w writer) i64(v int64) writer { return binary.BigEndian.AppendUint64(w, uint64(v)) }
func (w writer) uv(v uint64) writer { return binary.AppendUvarint(w, v) }

// str is a non-flexible string (keys).
func (w writer) str(s string) writer { return append(w.i16(int16(len(s))), s...) }

// cstr is a compact string.
func (w writer) cstr(s string) writer { return append(w.uv(uint64(len(s))+1), s...) }

// cbytes is compact bytes.
func (w writer) cbytes(b []byte) writer { return append(w.uv(uint64(len(b))+1), b...) }

// cnstr is a compact nullable string.
func (w writer) cnstr(s *string) writer {
	if s == nil {
		return w.uv(0)
	}
	return w.cstr(*s)
}

func (w writer) topicParts(s partSet) writer {
	ts := s.byTopic()
	w = w.uv(uint64(len(ts)) + 1)
	for _, t := range ts {
		w = append(w, t.id[:]...)
		w = w.uv(uint64(len(t.parts)) + 1)
		for _, p := range t.parts {
			w = w.i32(p)
		}
		w = w.uv(0) // tags
	}
	return w
}

func cgMetadataKey(group string) []byte {
	return writer(nil).i16(cgMetadataType).str(group)
}

func cgMetadataValue(epoch int32, hash int64) []byte {
	w := writer(nil).i16(0).i32(epoch)
	if hash == 0 {
		return w.uv(0)
	}
	return w.uv(1).uv(0).uv(8).i64(hash) // tag 0: MetadataHash
}

func cgMemberKey(group, member string) []byte {
	return writer(nil).i16(cgMemberType).str(group).str(member)
}

func cgMemberValue(m *cmember) []byte {
	w := writer(nil).i16(0).cnstr(m.instanceID).cnstr(m.rackID).cstr(m.clientID).cstr(m.clientHost)
	w = w.uv(uint64(len(m.subscribedNames)) + 1)
	for _, t := range m.subscribedNames {
		w = w.cstr(t)
	}
	w = w.cnstr(m.subscribedRegex).i32(m.rebalanceTimeout).cnstr(m.assignor)
	if m.classic == nil {
		return w.uv(0)
	}
	// Tag 0, ClassicMemberMetadata: a nullable struct in a tagged field is its size + 1, a
	// uvarint 1 (not null), then the struct (Kafka's generated code).
	st := writer(nil).uv(1).i32(m.classic.sessionTimeout).uv(uint64(len(m.classic.protocols)) + 1)
	for _, p := range m.classic.protocols {
		st = st.cstr(p.name).cbytes(p.metadata).uv(0)
	}
	st = st.uv(0)
	return append(w.uv(1).uv(0).uv(uint64(len(st))), st...)
}

func cgTargetMetadataKey(group string) []byte {
	return writer(nil).i16(cgTargetMetadataType).str(group)
}

func cgTargetMetadataValue(epoch int32) []byte {
	return writer(nil).i16(0).i32(epoch).uv(0)
}

func cgTargetMemberKey(group, member string) []byte {
	return writer(nil).i16(cgTargetMemberType).str(group).str(member)
}

func cgTargetMemberValue(s partSet) []byte {
	return writer(nil).i16(0).topicParts(s).uv(0)
}

func cgCurrentAssignmentKey(group, member string) []byte {
	return writer(nil).i16(cgCurrentAssignmentType).str(group).str(member)
}

func cgCurrentAssignmentValue(m *cmember) []byte {
	return writer(nil).i16(0).i32(m.epoch).i32(m.prevEpoch).i8(int8(m.state)).topicParts(m.assigned).topicParts(m.pendingRevoke).uv(0)
}

var errBadRecord = errors.New("malformed consumer group record")

// reader decodes a record; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b) {
		r.err = errBadRecord
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) i8() int8 {
	if b := r.take(1); b != nil {
		return int8(b[0])
	}
	return 0
}

func (r *reader) i16() int16 {
	if b := r.take(2); b != nil {
		return int16(binary.BigEndian.Uint16(b))
	}
	return 0
}

func (r *reader) i32() int32 {
	if b := r.take(4); b != nil {
		return int32(binary.BigEndian.Uint32(b))
	}
	return 0
}

func (r *reader) uv() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errBadRecord
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) str() string { return string(r.take(int(r.i16()))) }

// cnstr reads a compact nullable string.
func (r *reader) cnstr() *string {
	n := r.uv()
	if n == 0 || r.err != nil {
		return nil
	}
	if n-1 > uint64(len(r.b)) {
		r.err = errBadRecord
		return nil
	}
	s := string(r.take(int(n - 1)))
	return &s
}

// cbytes reads compact bytes (null reads as empty).
func (r *reader) cbytes() []byte {
	n := r.uv()
	if n == 0 || r.err != nil {
		return []byte{}
	}
	if n-1 > uint64(len(r.b)) {
		r.err = errBadRecord
		return nil
	}
	return append([]byte{}, r.take(int(n-1))...)
}

func (r *reader) cstr() string {
	if s := r.cnstr(); s != nil {
		return *s
	}
	return ""
}

// arrayLen reads a compact array length (-1 for null), bounded by the bytes left.
func (r *reader) arrayLen() int {
	n := r.uv()
	if r.err != nil || n == 0 {
		return -1
	}
	if n-1 > uint64(len(r.b)) {
		r.err = errBadRecord
		return -1
	}
	return int(n - 1)
}

// tags reads a tagged-field section, calling fn with each field (fn may ignore it).
func (r *reader) tags(fn func(tag uint64, data []byte)) {
	n := r.uv()
	for i := uint64(0); i < n && r.err == nil; i++ {
		tag := r.uv()
		size := r.uv()
		if size > uint64(len(r.b)) {
			r.err = errBadRecord
			return
		}
		data := r.take(int(size))
		if fn != nil && r.err == nil {
			fn(tag, data)
		}
	}
}

func (r *reader) topicParts() partSet {
	s := partSet{}
	n := r.arrayLen()
	for i := 0; i < n && r.err == nil; i++ {
		var id [16]byte
		copy(id[:], r.take(16))
		k := r.arrayLen()
		for j := 0; j < k && r.err == nil; j++ {
			s[idPart{id, r.i32()}] = struct{}{}
		}
		r.tags(nil)
	}
	return s
}

// readClassicMemberMetadata reads the ClassicMemberMetadata tagged field of a member record:
// nil when null.
func readClassicMemberMetadata(data []byte) (*classicMeta, error) {
	r := &reader{b: data}
	if r.uv() == 0 {
		return nil, r.err
	}
	cm := &classicMeta{sessionTimeout: r.i32()}
	n := r.arrayLen()
	for i := 0; i < n && r.err == nil; i++ {
		p := protocol{name: r.cstr(), metadata: r.cbytes()}
		r.tags(nil)
		cm.protocols = append(cm.protocols, p)
	}
	r.tags(nil)
	if r.err == nil && len(cm.protocols) == 0 {
		r.err = errBadRecord // a classic member always has a protocol
	}
	return cm, r.err
}

// loadedConsumer collects what one consumer group's records say while a partition is replayed.
type loadedConsumer struct {
	hasMeta         bool
	epoch           int32
	metaHash        int64
	assignmentEpoch int32
	members         map[string]*cmember // from member metadata and current assignment records
	target          map[string]partSet
}

func (lc *loadedConsumer) member(id string) *cmember {
	m := lc.members[id]
	if m == nil {
		m = &cmember{id: id, rebalanceTimeout: -1, assigned: partSet{}, pendingRevoke: partSet{}}
		lc.members[id] = m
	}
	return m
}

// loadConsumerRecord applies one consumer group record (key version typ) while loading.
func (c *Coordinator) loadConsumerRecord(p int32, typ int16, key, value []byte, get func(string) *loadedGroup) {
	switch typ {
	case cgMetadataType, cgMemberType, cgTargetMetadataType, cgTargetMemberType, cgCurrentAssignmentType:
	default:
		return // 4 (subscription metadata), 16 (regexes), share groups: not used
	}
	kr := &reader{b: key[2:]}
	group := kr.str()
	member := ""
	if typ == cgMemberType || typ == cgTargetMemberType || typ == cgCurrentAssignmentType {
		member = kr.str()
	}
	if kr.err != nil {
		c.log.Warn("offsets topic: bad consumer group key", "partition", p, "type", typ)
		return
	}
	lg := get(group)
	if lg.cg == nil {
		lg.cg = &loadedConsumer{members: map[string]*cmember{}, target: map[string]partSet{}}
	}
	lc := lg.cg
	if value == nil {
		switch typ {
		case cgMetadataType:
			*lc = loadedConsumer{members: map[string]*cmember{}, target: map[string]partSet{}}
		case cgMemberType, cgCurrentAssignmentType:
			delete(lc.members, member)
		case cgTargetMemberType:
			delete(lc.target, member)
		case cgTargetMetadataType:
			lc.assignmentEpoch = 0
		}
		return
	}
	r := &reader{b: value}
	if v := r.i16(); v != 0 && r.err == nil {
		c.log.Warn("offsets topic: consumer group record of an unknown version", "partition", p, "type", typ, "version", v)
		return
	}
	switch typ {
	case cgMetadataType:
		epoch := r.i32()
		var hash int64
		r.tags(func(tag uint64, data []byte) {
			if tag == 0 && len(data) == 8 {
				hash = int64(binary.BigEndian.Uint64(data))
			}
		})
		if r.err == nil {
			lc.hasMeta, lc.epoch, lc.metaHash = true, epoch, hash
		}
	case cgMemberType:
		m := &cmember{}
		m.instanceID, m.rackID = r.cnstr(), r.cnstr()
		m.clientID, m.clientHost = r.cstr(), r.cstr()
		n := r.arrayLen()
		for i := 0; i < n && r.err == nil; i++ {
			m.subscribedNames = append(m.subscribedNames, r.cstr())
		}
		m.subscribedRegex = r.cnstr()
		m.rebalanceTimeout = r.i32()
		m.assignor = r.cnstr()
		r.tags(func(tag uint64, data []byte) {
			if tag == 0 && r.err == nil {
				m.classic, r.err = readClassicMemberMetadata(data)
			}
		})
		if r.err != nil {
			break
		}
		lm := lc.member(member)
		lm.instanceID, lm.rackID, lm.clientID, lm.clientHost = m.instanceID, m.rackID, m.clientID, m.clientHost
		lm.subscribedNames, lm.subscribedRegex, lm.rebalanceTimeout, lm.assignor = m.subscribedNames, m.subscribedRegex, m.rebalanceTimeout, m.assignor
		lm.classic = m.classic
	case cgTargetMetadataType:
		epoch := r.i32()
		r.tags(nil)
		if r.err == nil {
			lc.assignmentEpoch = epoch
		}
	case cgTargetMemberType:
		s := r.topicParts()
		r.tags(nil)
		if r.err == nil {
			lc.target[member] = s
		}
	case cgCurrentAssignmentType:
		epoch, prev, state := r.i32(), r.i32(), memberState(r.i8())
		assigned, pending := r.topicParts(), r.topicParts()
		r.tags(nil)
		if r.err != nil {
			break
		}
		if state != memberUnrevokedPartitions && state != memberUnreleasedPartitions {
			state = memberStable // a state we do not know: reconciled again from its epoch
		}
		lm := lc.member(member)
		lm.epoch, lm.prevEpoch, lm.state, lm.assigned, lm.pendingRevoke = epoch, prev, state, assigned, pending
	}
	if r.err != nil {
		c.log.Warn("offsets topic: bad consumer group value", "partition", p, "type", typ, "group", group)
	}
}

// installConsumer makes a loading group the consumer group its records describe; its members'
// timers are started by startTimers. The subscribed topics are recomputed on the first
// heartbeat: a new group epoch only if they changed meanwhile. Caller holds g.mu.
func (g *group) installConsumer(lc *loadedConsumer) {
	if lc == nil || !lc.hasMeta {
		return
	}
	cg := newConsumerGroup(g)
	g.cg = cg
	g.protocolType = "consumer"
	g.c.metrics.consumer.byState[ConsumerEmpty].Add(1)
	cg.epoch, cg.metaHash, cg.assignmentEpoch = lc.epoch, lc.metaHash, lc.assignmentEpoch
	for id, m := range lc.members {
		if m.subscribedRegex != nil && *m.subscribedRegex != "" {
			m.regex, _ = compileSubscriptionRegex(*m.subscribedRegex)
		}
		if m.rebalanceTimeout <= 0 {
			m.rebalanceTimeout = int32(g.c.cfg.ConsumerSessionTimeout / time.Millisecond)
		}
		cg.addMember(m)
		if t, ok := lc.target[id]; ok {
			cg.target[id] = t
		}
	}
	if th, ok := g.c.host.(TopicsHost); ok {
		// Topic ids and names for ConsumerGroupDescribe until the first heartbeat; the hash
		// is kept, so that heartbeat bumps the epoch only if the topics changed meanwhile.
		hash := cg.metaHash
		cg.refreshTopics(th)
		cg.metaHash, cg.metaVersion = hash, nil
	}
	cg.updateState()
}

// startTimers starts the sessions of a loaded consumer group's members, and the rebalance
// timeout of those revoking. Caller holds g.mu.
func (cg *consumerGroup) startTimers() {
	for _, m := range cg.members {
		cg.scheduleSession(m)
		if m.state == memberUnrevokedPartitions {
			cg.scheduleRevoke(m)
		}
	}
}
