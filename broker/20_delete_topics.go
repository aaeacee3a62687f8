package broker

// DeleteTopics v0–v6. v0–v5 name the topics (topic_names); v6 names each topic or gives its
// id (topics[].name / topic_id), never both. As the Java broker answers (KRaft,
// ControllerApis.deleteTopics):
//
//   - neither a name nor an id, or both: INVALID_REQUEST;
//   - a name (or id) given more than once: one INVALID_REQUEST result for it ("Duplicate topic
//     name." / "Duplicate topic id.");
//   - a name that resolves to an id also given by id: INVALID_REQUEST for the name, and no
//     result for the id (Kafka drops it the same way);
//   - an unknown name: UNKNOWN_TOPIC_OR_PARTITION; an unknown id: UNKNOWN_TOPIC_ID.
//
// Internal topics (__consumer_offsets, __transaction_state) are deleted like any other: only
// the kafka-topics tool refuses them, the broker has no such check. Deletion is synchronous:
// when the response leaves, the topic is gone from metadata and its folders from disk, and
// fetches parked on it are woken. Results keep the request's order (Kafka shuffles them, so no
// client depends on an order). v5+ carries error messages; v6 each result's topic id.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.DeleteTopics, 0, 6, true, func(b *Broker, h *reqHeader, req *kmsg.DeleteTopicsRequest) kmsg.Response {
		return b.deleteTopics(h, req)
	})
}

// deleteTarget is one topic named by a DeleteTopics request and its outcome.
type deleteTarget struct {
	name   *string
	id     [16]byte
	byID   bool // given by id (v6)
	code   int16
	msg    string
	silent bool // no result (an id also reached by name)
	done   bool // code and msg are final
}

func (b *Broker) deleteTopics(h *reqHeader, req *kmsg.DeleteTopicsRequest) *kmsg.DeleteTopicsResponse {
	ts := deleteTargets(h.version, req)
	b.resolveDeleteTargets(ts)
	resp := kmsg.NewPtrDeleteTopicsResponse()
	for i := range ts {
		t := &ts[i]
		if t.silent {
			continue
		}
		if !t.done {
			t.code = b.deleteResolved(t)
		}
		out := kmsg.NewDeleteTopicsResponseTopic()
		out.Topic, out.TopicID, out.ErrorCode = t.name, t.id, t.code
		if t.code != 0 {
			b.metrics.failed(h.key)
			msg := t.msg
			if msg == "" {
				msg = deleteTopicsMessage(t.code)
			}
			out.ErrorMessage = &msg
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp
}

// deleteTargets lists the request's topics, answering the malformed and duplicated ones.
func deleteTargets(version int16, req *kmsg.DeleteTopicsRequest) []deleteTarget {
	var ts []deleteTarget
	if version < 6 {
		for i := range req.TopicNames {
			ts = append(ts, deleteTarget{name: &req.TopicNames[i]})
		}
	} else {
		for _, rt := range req.Topics {
			t := deleteTarget{name: rt.Topic, id: rt.TopicID, byID: rt.Topic == nil}
			switch {
			case rt.Topic == nil && rt.TopicID == [16]byte{}:
				t.code, t.msg, t.done = errInvalidRequest, "Neither topic name nor id were specified.", true
			case rt.Topic != nil && rt.TopicID != [16]byte{}:
				t.code, t.msg, t.done = errInvalidRequest, "You may not specify both topic name and topic id.", true
			}
			ts = append(ts, t)
		}
	}
	names, ids := map[string]int{}, map[[16]byte]int{}
	for _, t := range ts {
		switch {
		case t.done:
		case t.name != nil:
			names[*t.name]++
		default:
			ids[t.id]++
		}
	}
	answered := map[any]bool{}
	for i := range ts {
		t := &ts[i]
		switch {
		case t.done:
		case t.name != nil && names[*t.name] > 1:
			t.silent = answered[*t.name]
			answered[*t.name] = true
			t.code, t.msg, t.done = errInvalidRequest, "Duplicate topic name.", true
		case t.name == nil && ids[t.id] > 1:
			t.silent = answered[t.id]
			answered[t.id] = true
			t.code, t.msg, t.done = errInvalidRequest, "Duplicate topic id.", true
		}
	}
	return ts
}

// resolveDeleteTargets looks up names and ids: unknown ones are answered, known names get
// their ids, and a name reaching an id that was also given by id is refused.
func (b *Broker) resolveDeleteTargets(ts []deleteTarget) {
	byID := map[[16]byte]*deleteTarget{} // every id given by id, even duplicated ones
	for i := range ts {
		if t := &ts[i]; t.byID && t.id != [16]byte{} && byID[t.id] == nil {
			byID[t.id] = t
		}
	}
	for i := range ts {
		t := &ts[i]
		if t.done {
			continue
		}
		if t.name == nil {
			tp := b.topics.getByID(t.id)
			if tp == nil {
				t.code, t.done = errUnknownTopicID, true
				continue
			}
			name := tp.meta.Name
			t.name = &name
			continue
		}
		tp := b.topics.get(*t.name)
		if tp == nil {
			t.code, t.done = errUnknownTopicOrPartition, true
			continue
		}
		if other := byID[tp.meta.ID]; other != nil {
			t.id = tp.meta.ID
			t.code, t.msg, t.done = errInvalidRequest, "The provided topic name maps to an ID that was already supplied.", true
			if !other.done {
				other.silent = true
			}
			continue
		}
		t.id = tp.meta.ID
	}
}

// deleteResolved deletes a resolved topic. One given by id that was deleted, or deleted and
// created again, since the lookup is UNKNOWN_TOPIC_ID.
func (b *Broker) deleteResolved(t *deleteTarget) int16 {
	var id [16]byte
	if t.byID {
		id = t.id
	}
	return b.topics.delete(*t.name, id)
}

// deleteTopicsMessage is the Java broker's default message for a code (ApiError(Errors)).
func deleteTopicsMessage(code int16) string {
	switch code {
	case errUnknownTopicOrPartition:
		return "This server does not host this topic-partition."
	case errUnknownTopicID:
		return "This server does not host this topic ID."
	case errKafkaStorageError:
		return "Disk error when trying to access log file on the disk."
	}
	return ""
}
