package replication

// Fetch v12, the follower's side: the request is encoded and the response decoded by hand so
// that steady-state replication allocates nothing (the broker's 01_fetch.go is the server side
// of the same layouts). v12 is flexible: compact arrays and strings (uvarint length + 1) and
// tagged fields ([tags]). No fetch sessions are used (session id 0, epoch -1: full fetches).
//
// Request (header v2, then the body):
//
//	size i32 | api_key i16 = 1 | api_version i16 = 12 | correlation_id i32 |
//	client_id (i16-length string, not compact) | [tags] |
//	replica_id i32 | max_wait_ms i32 | min_bytes i32 | max_bytes i32 | isolation_level i8 = 0 |
//	session_id i32 = 0 | session_epoch i32 = -1 | topics[
//	  topic (string) | partitions[
//	    partition i32 | current_leader_epoch i32 | fetch_offset i64 | last_fetched_epoch i32 |
//	    log_start_offset i64 | partition_max_bytes i32 | [tags]
//	  ] | [tags]
//	] | forgotten_topics_data[] = empty | rack_id (string) = "" | [tags]
//
// Consecutive partitions of one topic share a topic entry; a topic may appear again later in
// the request (the partition order rotates), which Kafka and Spate leaders accept.
//
// Response (header v1, then the body):
//
//	correlation_id i32 | [tags] |
//	throttle_time_ms i32 | error_code i16 | session_id i32 | topics[
//	  topic (string) | partitions[
//	    partition i32 | error_code i16 | high_watermark i64 | last_stable_offset i64 |
//	    log_start_offset i64 | aborted_transactions (nullable)[ producer_id i64 |
//	    first_offset i64 | [tags] ] | preferred_read_replica i32 | records (nullable bytes) |
//	    [tags: 0 diverging_epoch {epoch i32 | end_offset i64 | [tags]},
//	           1 current_leader {leader_id i32 | leader_epoch i32 | [tags]}, 2 snapshot_id]
//	  ] | [tags]
//	] | [tags: 0 node_endpoints]

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kmsg"
)

const fetchVersion = 12

// fetchParams are a follower fetch request's fields other than its partitions.
type fetchParams struct {
	correlationID int32
	clientID      string
	replicaID     int32
	maxWaitMs     int32
	minBytes      int32
	maxBytes      int32
}

// fetchPartition is one partition of a follower fetch request.
type fetchPartition struct {
	topic              string
	partition          int32
	currentLeaderEpoch int32
	fetchOffset        int64
	lastFetchedEpoch   int32
	logStartOffset     int64
	partitionMaxBytes  int32
}

// appendFetchRequest appends a whole Fetch v12 request (size prefix included) to dst.
func appendFetchRequest(dst []byte, p *fetchParams, parts []fetchPartition) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0) // size, patched below
	dst = appendInt16(dst, int16(kmsg.Fetch))
	dst = appendInt16(dst, fetchVersion)
	dst = appendInt32(dst, p.correlationID)
	dst = appendInt16(dst, int16(len(p.clientID)))
	dst = append(dst, p.clientID...)
	dst = append(dst, 0) // header tags
	dst = appendInt32(dst, p.replicaID)
	dst = appendInt32(dst, p.maxWaitMs)
	dst = appendInt32(dst, p.minBytes)
	dst = appendInt32(dst, p.maxBytes)
	dst = append(dst, 0)       // isolation_level: read_uncommitted
	dst = appendInt32(dst, 0)  // session_id: none
	dst = appendInt32(dst, -1) // session_epoch: full fetch, no session
	dst = appendCompactLen(dst, topicRuns(parts))
	for i := 0; i < len(parts); {
		n := runLen(parts[i:])
		dst = appendCompactString(dst, parts[i].topic)
		dst = appendCompactLen(dst, n)
		for _, fp := range parts[i : i+n] {
			dst = appendInt32(dst, fp.partition)
			dst = appendInt32(dst, fp.currentLeaderEpoch)
			dst = appendInt64(dst, fp.fetchOffset)
			dst = appendInt32(dst, fp.lastFetchedEpoch)
			dst = appendInt64(dst, fp.logStartOffset)
			dst = appendInt32(dst, fp.partitionMaxBytes)
			dst = append(dst, 0) // partition tags
		}
		dst = append(dst, 0) // topic tags
		i += n
	}
	dst = append(dst, 1) // forgotten_topics_data: empty
	dst = append(dst, 1) // rack_id: ""
	dst = append(dst, 0) // request tags
	size := len(dst) - start - 4
	dst[start], dst[start+1], dst[start+2], dst[start+3] = byte(size>>24), byte(size>>16), byte(size>>8), byte(size)
	return dst
}

// topicRuns counts the runs of consecutive partitions of one topic.
func topicRuns(parts []fetchPartition) int {
	n := 0
	for i := range parts {
		if i == 0 || parts[i].topic != parts[i-1].topic {
			n++
		}
	}
	return n
}

// runLen is the length of the run of partitions of parts[0]'s topic at the start of parts.
func runLen(parts []fetchPartition) int {
	n := 1
	for n < len(parts) && parts[n].topic == parts[0].topic {
		n++
	}
	return n
}

// fetchResponse is a decoded Fetch v12 response, reused across responses: its slices keep
// their capacity, and byte fields are views of the frame it was decoded from.
type fetchResponse struct {
	correlationID int32
	throttleMs    int32
	errorCode     int16
	sessionID     int32
	topics        []fetchRespTopic
}

type fetchRespTopic struct {
	name  []byte
	parts []fetchRespPartition
}

type fetchRespPartition struct {
	partition            int32
	errorCode            int16
	highWatermark        int64
	lastStableOffset     int64
	logStartOffset       int64
	divergingEpoch       EpochEndOffset // {-1, -1} when absent
	currentLeaderID      int32          // -1 when absent
	currentLeaderEpoch   int32          // -1 when absent
	preferredReadReplica int32
	records              []byte // nil when null
}

var errMalformedFetchResponse = errors.New("replication: malformed fetch response")

// decode decodes a whole response frame (after its size prefix). It allocates only to grow
// the reused slices, one element per element present in the frame, never from a length.
func (d *fetchResponse) decode(frame []byte) error {
	r := reader{b: frame}
	d.correlationID = r.int32()
	r.skipTags()
	d.throttleMs = r.int32()
	d.errorCode = r.int16()
	d.sessionID = r.int32()
	nt := r.compactLen()
	d.topics = d.topics[:0]
	for i := 0; i < nt && !r.bad; i++ {
		if len(d.topics) < cap(d.topics) {
			d.topics = d.topics[:i+1]
		} else {
			d.topics = append(d.topics, fetchRespTopic{})
		}
		t := &d.topics[i]
		t.name = r.compactBytes()
		np := r.compactLen()
		t.parts = t.parts[:0]
		for j := 0; j < np && !r.bad; j++ {
			t.parts = append(t.parts, fetchRespPartition{})
			decodeFetchRespPartition(&r, &t.parts[j])
		}
		r.skipTags()
	}
	r.skipTags()
	if r.bad || nt < 0 {
		d.topics = d.topics[:0]
		return errMalformedFetchResponse
	}
	return nil
}

func decodeFetchRespPartition(r *reader, p *fetchRespPartition) {
	p.partition = r.int32()
	p.errorCode = r.int16()
	p.highWatermark = r.int64()
	p.lastStableOffset = r.int64()
	p.logStartOffset = r.int64()
	for n := r.compactLen(); n > 0 && !r.bad; n-- { // aborted transactions: read_committed only
		r.take(16)
		r.skipTags()
	}
	p.preferredReadReplica = r.int32()
	p.records = r.compactBytes()
	p.divergingEpoch = EpochEndOffset{Epoch: UndefinedEpoch, EndOffset: UndefinedEpochOffset}
	p.currentLeaderID, p.currentLeaderEpoch = -1, -1
	nTags := r.uvarint()
	if nTags > uint64(len(r.b)) {
		r.fail()
		return
	}
	for k := uint64(0); k < nTags && !r.bad; k++ {
		key, body := r.tag()
		t := reader{b: body}
		switch key {
		case 0:
			p.divergingEpoch.Epoch = t.int32()
			p.divergingEpoch.EndOffset = t.int64()
			t.skipTags()
		case 1:
			p.currentLeaderID = t.int32()
			p.currentLeaderEpoch = t.int32()
			t.skipTags()
		}
		if t.bad {
			r.fail()
		}
	}
}
