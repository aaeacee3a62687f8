package controller

import (
	"errors"
	"fmt"
)

// Metadata records: the only thing written to the Raft log. The leader validates an
// operation against the current Image, turns it into records, and proposes them as one Raft
// entry; every node (voter or not) applies the entry's records in order to its Image
// (fsm.go), so a batch is atomic.
//
// Raft entry (raft.LogCommand data):
//
//	field      type      notes
//	─────────  ────────  ─────────────────────────────────────────────────
//	version    u8        entryVersion (0)
//	count      uvarint   number of records, ≥ 1
//	records    record×n
//
// Record:
//
//	field      type      notes
//	─────────  ────────  ─────────────────────────────────────────────────
//	type       u8        RecordType
//	version    u8        version of this type's body; unknown versions are corrupt
//	length     uvarint   body length in bytes
//	body       bytes     as below; must be consumed exactly
//
// Bodies, version 0 (primitives in codec.go):
//
//	type  record               body
//	────  ───────────────────  ─────────────────────────────────────────────────────────
//	1     RegisterBroker       broker_id int32, incarnation_id uuid,
//	                           endpoints [](name string, host string, port int32,
//	                           protocol string), rack *string
//	2     FenceBroker          broker_id int32, broker_epoch varint
//	3     UnfenceBroker        broker_id int32, broker_epoch varint
//	4     UnregisterBroker     broker_id int32, broker_epoch varint
//	5     CreateTopic          name string, topic_id uuid,
//	                           partitions [](replicas []int32, isr []int32, leader int32),
//	                           configs map[string]string
//	6     CreatePartitions     topic_id uuid, partitions (as in CreateTopic)
//	7     DeleteTopic          topic_id uuid
//	8     AlterConfigs         resource_type u8, resource_name string,
//	                           set map[string]string, delete []string
//	9     PartitionChange      topic_id uuid, partition int32, leader int32,
//	                           leader_epoch int32, partition_epoch int32,
//	                           isr []int32, replicas []int32
//	10    AllocateProducerIDs  broker_id int32, broker_epoch varint, first_id varint,
//	                           size int32
//	11    RegisterController   controller_id int32, incarnation_id uuid,
//	                           endpoints (as in RegisterBroker)
//
// Compatibility: a change to a body is a new version of that type; a node that meets a
// version it does not know stops applying (it must never skip a record others applied).
// Broker heartbeats are not records: the leader keeps them in memory and logs only the
// Fence/Unfence transitions they cause.

// RecordType identifies a record's body.
type RecordType uint8

// Record types. Values are stored in the log: never renumber.
const (
	TypeRegisterBroker      RecordType = 1
	TypeFenceBroker         RecordType = 2
	TypeUnfenceBroker       RecordType = 3
	TypeUnregisterBroker    RecordType = 4
	TypeCreateTopic         RecordType = 5
	TypeCreatePartitions    RecordType = 6
	TypeDeleteTopic         RecordType = 7
	TypeAlterConfigs        RecordType = 8
	TypePartitionChange     RecordType = 9
	TypeAllocateProducerIDs RecordType = 10
	TypeRegisterController  RecordType = 11
)

const entryVersion = 0

// Record is one metadata change. The concrete types are the *…Record structs below.
type Record interface {
	Type() RecordType
	// Version is the body version this code writes.
	Version() uint8
	appendBody(dst []byte) []byte
}

// Endpoint is a listener a broker accepts clients on.
type Endpoint struct {
	Name     string // listener name, e.g. "PLAINTEXT"
	Host     string
	Port     int32
	Protocol string // security protocol, e.g. "PLAINTEXT"
}

// RegisterBrokerRecord registers (or re-registers) a broker. The broker's epoch is the Raft
// index of the entry holding this record; a registered broker starts fenced.
type RegisterBrokerRecord struct {
	BrokerID      int32
	IncarnationID [16]byte // new each time the broker process starts
	Endpoints     []Endpoint
	Rack          *string
}

// RegisterControllerRecord registers (or re-registers) a controller: a node with the
// controller role, which may not be a broker (KIP-919's ControllerRegistrationRecord). Its
// endpoints are the Kafka listeners that answer the controller APIs (forwarded metadata
// writes, broker registrations and heartbeats, the quorum APIs).
type RegisterControllerRecord struct {
	ControllerID  int32
	IncarnationID [16]byte // new each time the controller process starts
	Endpoints     []Endpoint
}

// FenceBrokerRecord fences a broker: it may not lead or join ISRs. Applied only while
// BrokerEpoch is the broker's current epoch.
type FenceBrokerRecord struct {
	BrokerID    int32
	BrokerEpoch int64
}

// UnfenceBrokerRecord unfences a broker. Applied only while BrokerEpoch is current.
type UnfenceBrokerRecord struct {
	BrokerID    int32
	BrokerEpoch int64
}

// UnregisterBrokerRecord removes a broker's registration. Applied only while BrokerEpoch is
// current.
type UnregisterBrokerRecord struct {
	BrokerID    int32
	BrokerEpoch int64
}

// PartitionRecord is a new partition: LeaderEpoch and PartitionEpoch start at 0.
type PartitionRecord struct {
	Replicas []int32
	ISR      []int32
	Leader   int32
}

// CreateTopicRecord creates a topic with partitions 0..len(Partitions)-1.
type CreateTopicRecord struct {
	Name       string
	TopicID    [16]byte
	Partitions []PartitionRecord
	Configs    map[string]string
}

// CreatePartitionsRecord appends partitions to a topic.
type CreatePartitionsRecord struct {
	TopicID    [16]byte
	Partitions []PartitionRecord
}

// DeleteTopicRecord deletes a topic, its partitions and its configs.
type DeleteTopicRecord struct {
	TopicID [16]byte
}

// ConfigResourceType is Kafka's config resource type (DescribeConfigs, AlterConfigs).
type ConfigResourceType int8

// Config resource types the controller stores.
const (
	ConfigTopic  ConfigResourceType = 2
	ConfigBroker ConfigResourceType = 4
)

// AlterConfigsRecord sets and deletes config overrides of one resource. For ConfigBroker,
// ResourceName is a decimal broker id, or "" for the cluster-wide default.
type AlterConfigsRecord struct {
	ResourceType ConfigResourceType
	ResourceName string
	Set          map[string]string
	Delete       []string
}

// PartitionChangeRecord replaces a partition's leadership and ISR state. Applied only when
// PartitionEpoch is one more than the partition's current epoch.
type PartitionChangeRecord struct {
	TopicID        [16]byte
	Partition      int32
	Leader         int32
	LeaderEpoch    int32
	PartitionEpoch int32
	ISR            []int32
	Replicas       []int32
}

// AllocateProducerIDsRecord hands [FirstID, FirstID+Size) to a broker. Applied only when
// FirstID is the image's NextProducerID, so blocks never overlap.
type AllocateProducerIDsRecord struct {
	BrokerID    int32
	BrokerEpoch int64
	FirstID     int64
	Size        int32
}

func (*RegisterBrokerRecord) Type() RecordType      { return TypeRegisterBroker }
func (*FenceBrokerRecord) Type() RecordType         { return TypeFenceBroker }
func (*UnfenceBrokerRecord) Type() RecordType       { return TypeUnfenceBroker }
func (*UnregisterBrokerRecord) Type() RecordType    { return TypeUnregisterBroker }
func (*CreateTopicRecord) Type() RecordType         { return TypeCreateTopic }
func (*CreatePartitionsRecord) Type() RecordType    { return TypeCreatePartitions }
func (*DeleteTopicRecord) Type() RecordType         { return TypeDeleteTopic }
func (*AlterConfigsRecord) Type() RecordType        { return TypeAlterConfigs }
func (*PartitionChangeRecord) Type() RecordType     { return TypePartitionChange }
func (*AllocateProducerIDsRecord) Type() RecordType { return TypeAllocateProducerIDs }
func (*RegisterControllerRecord) Type() RecordType  { return TypeRegisterController }

func (*RegisterBrokerRecord) Version() uint8      { return 0 }
func (*FenceBrokerRecord) Version() uint8         { return 0 }
func (*UnfenceBrokerRecord) Version() uint8       { return 0 }
func (*UnregisterBrokerRecord) Version() uint8    { return 0 }
func (*CreateTopicRecord) Version() uint8         { return 0 }
func (*CreatePartitionsRecord) Version() uint8    { return 0 }
func (*DeleteTopicRecord) Version() uint8         { return 0 }
func (*AlterConfigsRecord) Version() uint8        { return 0 }
func (*PartitionChangeRecord) Version() uint8     { return 0 }
func (*AllocateProducerIDsRecord) Version() uint8 { return 0 }
func (*RegisterControllerRecord) Version() uint8  { return 0 }

// AppendRecord appends rec's encoding (header and body) to dst.
func AppendRecord(dst []byte, rec Record) []byte {
	body := rec.appendBody(nil)
	dst = append(dst, byte(rec.Type()), rec.Version())
	dst = appendUvarint(dst, uint64(len(body)))
	return append(dst, body...)
}

// AppendEntry appends a Raft entry holding recs, in order.
func AppendEntry(dst []byte, recs ...Record) []byte {
	dst = append(dst, entryVersion)
	dst = appendUvarint(dst, uint64(len(recs)))
	for _, rec := range recs {
		dst = AppendRecord(dst, rec)
	}
	return dst
}

// DecodeEntry decodes a Raft entry written by AppendEntry. Errors wrap ErrCorrupt.
func DecodeEntry(b []byte) ([]Record, error) {
	r := reader{b: b}
	if v := r.byte(); r.err == nil && v != entryVersion {
		return nil, fmt.Errorf("%w: entry version %d", ErrCorrupt, v)
	}
	n := r.count(3) // a record takes at least 3 bytes
	if r.err != nil {
		return nil, r.err
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: empty entry", ErrCorrupt)
	}
	recs := make([]Record, 0, n)
	rest := r.b
	for range n {
		rec, tail, err := DecodeRecord(rest)
		if err != nil {
			return nil, err
		}
		recs, rest = append(recs, rec), tail
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last record", ErrCorrupt, len(rest))
	}
	return recs, nil
}

// DecodeRecord decodes one record from the front of b and returns it with the unread tail.
// It never panics and allocates no more than b's length justifies. Errors wrap ErrCorrupt.
func DecodeRecord(b []byte) (Record, []byte, error) {
	r := reader{b: b}
	typ, ver := RecordType(r.byte()), r.byte()
	n := r.count(1)
	if r.err != nil {
		return nil, b, r.err
	}
	body, rest := r.b[:n], r.b[n:]
	if ver != 0 {
		return nil, b, fmt.Errorf("%w: record type %d version %d is unknown", ErrCorrupt, typ, ver)
	}
	rec, err := decodeBodyV0(typ, body)
	if err != nil {
		return nil, b, fmt.Errorf("decode record type %d: %w", typ, err)
	}
	return rec, rest, nil
}

func decodeBodyV0(typ RecordType, body []byte) (Record, error) {
	r := &reader{b: body}
	var rec Record
	switch typ {
	case TypeRegisterBroker:
		rec = decodeRegisterBroker(r)
	case TypeFenceBroker:
		rec = &FenceBrokerRecord{BrokerID: r.int32(), BrokerEpoch: r.varint()}
	case TypeUnfenceBroker:
		rec = &UnfenceBrokerRecord{BrokerID: r.int32(), BrokerEpoch: r.varint()}
	case TypeUnregisterBroker:
		rec = &UnregisterBrokerRecord{BrokerID: r.int32(), BrokerEpoch: r.varint()}
	case TypeCreateTopic:
		rec = &CreateTopicRecord{Name: r.string(), TopicID: r.uuid(), Partitions: decodePartitionRecords(r), Configs: r.stringMap()}
	case TypeCreatePartitions:
		rec = &CreatePartitionsRecord{TopicID: r.uuid(), Partitions: decodePartitionRecords(r)}
	case TypeDeleteTopic:
		rec = &DeleteTopicRecord{TopicID: r.uuid()}
	case TypeAlterConfigs:
		rec = &AlterConfigsRecord{ResourceType: ConfigResourceType(r.byte()), ResourceName: r.string(), Set: r.stringMap(), Delete: r.strings()}
	case TypePartitionChange:
		rec = &PartitionChangeRecord{TopicID: r.uuid(), Partition: r.int32(), Leader: r.int32(), LeaderEpoch: r.int32(),
			PartitionEpoch: r.int32(), ISR: r.int32s(), Replicas: r.int32s()}
	case TypeAllocateProducerIDs:
		rec = &AllocateProducerIDsRecord{BrokerID: r.int32(), BrokerEpoch: r.varint(), FirstID: r.varint(), Size: r.int32()}
	case TypeRegisterController:
		rec = &RegisterControllerRecord{ControllerID: r.int32(), IncarnationID: r.uuid(), Endpoints: decodeEndpoints(r)}
	default:
		return nil, fmt.Errorf("%w: unknown record type", ErrCorrupt)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes left in the body", ErrCorrupt, len(r.b))
	}
	return rec, nil
}

func decodeRegisterBroker(r *reader) *RegisterBrokerRecord {
	rec := &RegisterBrokerRecord{BrokerID: r.int32(), IncarnationID: r.uuid(), Endpoints: decodeEndpoints(r)}
	rec.Rack = r.optString()
	return rec
}

func decodeEndpoints(r *reader) []Endpoint {
	n := r.count(4) // an endpoint takes at least 4 bytes
	if n == 0 {
		return nil
	}
	eps := make([]Endpoint, n)
	for i := range eps {
		eps[i] = Endpoint{Name: r.string(), Host: r.string(), Port: r.int32(), Protocol: r.string()}
	}
	return eps
}

func appendEndpoints(dst []byte, eps []Endpoint) []byte {
	dst = appendUvarint(dst, uint64(len(eps)))
	for _, e := range eps {
		dst = appendString(dst, e.Name)
		dst = appendString(dst, e.Host)
		dst = appendVarint(dst, int64(e.Port))
		dst = appendString(dst, e.Protocol)
	}
	return dst
}

func decodePartitionRecords(r *reader) []PartitionRecord {
	n := r.count(3) // a partition takes at least 3 bytes
	if n == 0 {
		return nil
	}
	ps := make([]PartitionRecord, n)
	for i := range ps {
		ps[i] = PartitionRecord{Replicas: r.int32s(), ISR: r.int32s(), Leader: r.int32()}
	}
	return ps
}

func appendPartitionRecords(dst []byte, ps []PartitionRecord) []byte {
	dst = appendUvarint(dst, uint64(len(ps)))
	for _, p := range ps {
		dst = appendInt32s(dst, p.Replicas)
		dst = appendInt32s(dst, p.ISR)
		dst = appendVarint(dst, int64(p.Leader))
	}
	return dst
}

func (rec *RegisterBrokerRecord) appendBody(dst []byte) []byte {
	dst = appendVarint(dst, int64(rec.BrokerID))
	dst = append(dst, rec.IncarnationID[:]...)
	dst = appendEndpoints(dst, rec.Endpoints)
	return appendOptString(dst, rec.Rack)
}

func (rec *RegisterControllerRecord) appendBody(dst []byte) []byte {
	dst = appendVarint(dst, int64(rec.ControllerID))
	dst = append(dst, rec.IncarnationID[:]...)
	return appendEndpoints(dst, rec.Endpoints)
}

func (rec *FenceBrokerRecord) appendBody(dst []byte) []byte {
	return appendVarint(appendVarint(dst, int64(rec.BrokerID)), rec.BrokerEpoch)
}

func (rec *UnfenceBrokerRecord) appendBody(dst []byte) []byte {
	return appendVarint(appendVarint(dst, int64(rec.BrokerID)), rec.BrokerEpoch)
}

func (rec *UnregisterBrokerRecord) appendBody(dst []byte) []byte {
	return appendVarint(appendVarint(dst, int64(rec.BrokerID)), rec.BrokerEpoch)
}

func (rec *CreateTopicRecord) appendBody(dst []byte) []byte {
	dst = appendString(dst, rec.Name)
	dst = append(dst, rec.TopicID[:]...)
	dst = appendPartitionRecords(dst, rec.Partitions)
	return appendStringMap(dst, rec.Configs)
}

func (rec *CreatePartitionsRecord) appendBody(dst []byte) []byte {
	return appendPartitionRecords(append(dst, rec.TopicID[:]...), rec.Partitions)
}

func (rec *DeleteTopicRecord) appendBody(dst []byte) []byte {
	return append(dst, rec.TopicID[:]...)
}

func (rec *AlterConfigsRecord) appendBody(dst []byte) []byte {
	dst = append(dst, byte(rec.ResourceType))
	dst = appendString(dst, rec.ResourceName)
	dst = appendStringMap(dst, rec.Set)
	return appendStrings(dst, rec.Delete)
}

func (rec *PartitionChangeRecord) appendBody(dst []byte) []byte {
	dst = append(dst, rec.TopicID[:]...)
	dst = appendVarint(dst, int64(rec.Partition))
	dst = appendVarint(dst, int64(rec.Leader))
	dst = appendVarint(dst, int64(rec.LeaderEpoch))
	dst = appendVarint(dst, int64(rec.PartitionEpoch))
	dst = appendInt32s(dst, rec.ISR)
	return appendInt32s(dst, rec.Replicas)
}

func (rec *AllocateProducerIDsRecord) appendBody(dst []byte) []byte {
	dst = appendVarint(dst, int64(rec.BrokerID))
	dst = appendVarint(dst, rec.BrokerEpoch)
	dst = appendVarint(dst, rec.FirstID)
	return appendVarint(dst, int64(rec.Size))
}

// errStaleRecord is the apply result of a record whose precondition no longer holds (an
// epoch moved on, a topic is gone). Every node skips such a record the same way.
var errStaleRecord = errors.New("controller: stale metadata record")
