package controller

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"maps"
	"slices"
)

// A Raft snapshot of the metadata is one encoded Image: everything the records built, so a
// restore yields an image identical to the one snapshotted (same brokers, epochs, topics,
// partitions, configs, next producer id and applied index).
//
//	field             type          notes
//	────────────────  ────────────  ─────────────────────────────────────────────────────
//	magic             4 bytes       "SPMI"
//	version           u8            1 (0: the same without controllers)
//	applied_index     uvarint
//	next_producer_id  varint
//	brokers           count, then   a RegisterBroker body (id int32, incarnation_id uuid,
//	                  per broker    endpoints, rack *string), then epoch varint,
//	                  (id asc)      fenced bool
//	topics            count, then   name string, topic_id uuid, configs map,
//	                  per topic     partitions count, then per partition: replicas []int32,
//	                  (name asc)    isr []int32, leader int32, leader_epoch int32,
//	                                partition_epoch int32
//	broker_configs    count, then   name string ("" = cluster default), configs map
//	                  (name asc)
//	controllers       count, then   a RegisterController body (id int32,
//	                  per controller  incarnation_id uuid, endpoints); version 1 only
//	                  (id asc)
//	crc               u32 BE        CRC-32C of every byte before it
//
// The encoding is canonical: equal images encode to equal bytes.

const (
	imageMagic       = "SPMI"
	imageVersion     = 1
	maxSnapshotBytes = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// AppendImage appends img's snapshot encoding to dst.
func AppendImage(dst []byte, img *Image) []byte {
	start := len(dst)
	dst = append(dst, imageMagic...)
	dst = append(dst, imageVersion)
	dst = appendUvarint(dst, img.appliedIndex)
	dst = appendVarint(dst, img.nextProducerID)
	dst = appendUvarint(dst, uint64(len(img.brokers)))
	for _, bi := range img.Brokers() {
		dst = (&RegisterBrokerRecord{BrokerID: bi.ID, IncarnationID: bi.IncarnationID, Endpoints: bi.Endpoints, Rack: bi.Rack}).appendBody(dst)
		dst = appendVarint(dst, bi.Epoch)
		dst = appendBool(dst, bi.Fenced)
	}
	dst = appendUvarint(dst, uint64(len(img.topics)))
	for _, t := range img.Topics() {
		dst = appendString(dst, t.Name)
		dst = append(dst, t.ID[:]...)
		dst = appendStringMap(dst, t.Configs)
		dst = appendUvarint(dst, uint64(len(t.Partitions)))
		for _, p := range t.Partitions {
			dst = appendInt32s(dst, p.Replicas)
			dst = appendInt32s(dst, p.ISR)
			dst = appendVarint(dst, int64(p.Leader))
			dst = appendVarint(dst, int64(p.LeaderEpoch))
			dst = appendVarint(dst, int64(p.PartitionEpoch))
		}
	}
	dst = appendUvarint(dst, uint64(len(img.brokerConfigs)))
	for _, name := range slices.Sorted(maps.Keys(img.brokerConfigs)) {
		dst = appendString(dst, name)
		dst = appendStringMap(dst, img.brokerConfigs[name])
	}
	dst = appendUvarint(dst, uint64(len(img.controllers)))
	for _, ci := range img.Controllers() {
		dst = (&RegisterControllerRecord{ControllerID: ci.ID, IncarnationID: ci.IncarnationID, Endpoints: ci.Endpoints}).appendBody(dst)
	}
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// DecodeImage decodes a snapshot written by AppendImage. Errors wrap ErrCorrupt.
func DecodeImage(b []byte) (*Image, error) {
	if len(b) < len(imageMagic)+1+4 || string(b[:len(imageMagic)]) != imageMagic {
		return nil, fmt.Errorf("%w: not a metadata snapshot", ErrCorrupt)
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("%w: metadata snapshot checksum mismatch", ErrCorrupt)
	}
	version := body[len(imageMagic)]
	if version > imageVersion {
		return nil, fmt.Errorf("%w: metadata snapshot version %d is unknown", ErrCorrupt, version)
	}
	r := &reader{b: body[len(imageMagic)+1:]}
	img := emptyImage()
	img.appliedIndex = r.uvarint()
	img.nextProducerID = r.varint()
	for n := r.count(20); n > 0 && r.err == nil; n-- {
		reg := decodeRegisterBroker(r)
		bi := &BrokerInfo{ID: reg.BrokerID, IncarnationID: reg.IncarnationID, Endpoints: reg.Endpoints, Rack: reg.Rack,
			Epoch: r.varint(), Fenced: r.bool()}
		if img.brokers[bi.ID] != nil {
			r.fail("duplicate broker")
		}
		img.brokers[bi.ID] = bi
	}
	for n := r.count(18); n > 0 && r.err == nil; n-- {
		t := &TopicInfo{Name: r.string(), ID: r.uuid(), Configs: r.stringMap()}
		if np := r.count(5); np > 0 {
			t.Partitions = make([]PartitionState, np)
			for i := range t.Partitions {
				t.Partitions[i] = PartitionState{Replicas: r.int32s(), ISR: r.int32s(), Leader: r.int32(),
					LeaderEpoch: r.int32(), PartitionEpoch: r.int32()}
			}
		}
		if img.topics[t.Name] != nil || img.topicsByID[t.ID] != nil {
			r.fail("duplicate topic")
		}
		img.topics[t.Name], img.topicsByID[t.ID] = t, t
	}
	for n := r.count(2); n > 0 && r.err == nil; n-- {
		name, m := r.string(), r.stringMap()
		if img.brokerConfigs[name] != nil || m == nil {
			r.fail("bad broker configs")
		}
		img.brokerConfigs[name] = m
	}
	if version >= 1 {
		for n := r.count(18); n > 0 && r.err == nil; n-- { // id, uuid, endpoint count
			ci := &ControllerInfo{ID: r.int32(), IncarnationID: r.uuid()}
			ci.Endpoints = decodeEndpoints(r)
			if img.controllers[ci.ID] != nil {
				r.fail("duplicate controller")
			}
			img.controllers[ci.ID] = ci
		}
	}
	if r.err != nil {
		return nil, fmt.Errorf("decode metadata snapshot: %w", r.err)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the metadata snapshot", ErrCorrupt, len(r.b))
	}
	return img, nil
}
