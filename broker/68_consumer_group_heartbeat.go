package broker

// ConsumerGroupHeartbeat v0–v1 (KIP-848, the next-generation consumer group protocol; see
// package coordinator for the rules). v0 joins without a member id and is given one; v1
// members bring theirs and may subscribe by regex (RE2 syntax, matched against whole topic
// names). The assignment is computed by the coordinator ("uniform" or "range"). Runs off the
// event loop: a heartbeat may append to __consumer_offsets.
//
// The coordinator learns topic ids, partition counts and topic changes through the
// coordinator.TopicsHost methods of offsetsHost below.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/netio"
)

func init() {
	registerAsync(kmsg.ConsumerGroupHeartbeat, 0, 1, true, func(b *Broker, c *netio.Conn, h *reqHeader, req *kmsg.ConsumerGroupHeartbeatRequest, reply func(*kmsg.ConsumerGroupHeartbeatResponse)) {
		reply(b.groups.ConsumerGroupHeartbeat(req, groupClient(c, h)))
	})
}

// TopicsVersion is the current topic view: a new one is published on every topic change.
func (h offsetsHost) TopicsVersion() any { return h.b.topics.view.Load() }

func (h offsetsHost) TopicByName(name string) ([16]byte, int32, bool) {
	t := h.b.topics.get(name)
	if t == nil {
		return [16]byte{}, 0, false
	}
	return t.meta.ID, int32(len(t.partitions)), true
}

func (h offsetsHost) TopicByID(id [16]byte) (string, int32, bool) {
	t := h.b.topics.getByID(id)
	if t == nil {
		return "", 0, false
	}
	return t.meta.Name, int32(len(t.partitions)), true
}

func (h offsetsHost) TopicNames() []string { return h.b.topics.names() }
