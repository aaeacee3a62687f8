package broker

// Metadata v0–v12. Topics null (v1+) means all topics; v0's empty list means all too.
// Unknown topics are created when auto.create.topics.enable is on and the request allows it
// (v4+ AllowAutoTopicCreation; always for v0–v3). v10+ topic ids; v12 may look topics up by id
// only.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.Metadata, 0, 12, true, func(b *Broker, h *reqHeader, req *kmsg.MetadataRequest) kmsg.Response {
		return b.metadata(h, req)
	})
}

func (b *Broker) brokerList() []kmsg.MetadataResponseBroker {
	if c := b.cluster; c != nil {
		return c.brokerList()
	}
	var rack *string
	if b.cfg.Rack != "" {
		rack = &b.cfg.Rack
	}
	return []kmsg.MetadataResponseBroker{{NodeID: b.cfg.NodeID, Host: b.cfg.AdvertisedHost, Port: b.cfg.AdvertisedPort, Rack: rack}}
}

func (b *Broker) metadata(h *reqHeader, req *kmsg.MetadataRequest) *kmsg.MetadataResponse {
	resp := kmsg.NewPtrMetadataResponse()
	resp.Brokers = b.brokerList()
	cid := b.cfg.ClusterID
	resp.ClusterID = &cid
	resp.ControllerID = b.cfg.NodeID
	if c := b.cluster; c != nil {
		resp.ControllerID = c.clientControllerID()
	}
	resp.AuthorizedOperations = -2147483648
	all := req.Topics == nil || (h.version == 0 && len(req.Topics) == 0)
	autoCreate := b.cfg.AutoCreateTopics && (h.version < 4 || req.AllowAutoTopicCreation)
	if all {
		for _, name := range b.topics.names() {
			if t := b.topics.get(name); t != nil {
				resp.Topics = append(resp.Topics, b.topicMetadata(t))
			}
		}
		return resp
	}
	for _, rt := range req.Topics {
		var t *topic
		var name string
		if rt.Topic != nil {
			name = *rt.Topic
			t = b.topics.get(name)
		} else if rt.TopicID != [16]byte{} {
			t = b.topics.getByID(rt.TopicID)
			if t == nil {
				mt := kmsg.NewMetadataResponseTopic()
				mt.ErrorCode = errUnknownTopicID
				mt.TopicID = rt.TopicID
				resp.Topics = append(resp.Topics, mt)
				continue
			}
		}
		if t == nil {
			code := errUnknownTopicOrPartition
			switch {
			case !validTopicName(name):
				code = errInvalidTopicException
			case autoCreate && !isInternalTopic(name):
				created, c, _ := b.topics.create(name, b.cfg.NumPartitions, nil, false)
				if c == 0 || c == errTopicAlreadyExists {
					if created == nil {
						created = b.topics.get(name)
					}
					if created != nil {
						resp.Topics = append(resp.Topics, b.topicMetadata(created))
						continue
					}
				}
				code = c
			}
			mt := kmsg.NewMetadataResponseTopic()
			n := name
			mt.Topic = &n
			mt.ErrorCode = code
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		resp.Topics = append(resp.Topics, b.topicMetadata(t))
	}
	return resp
}

func isInternalTopic(name string) bool {
	return name == "__consumer_offsets" || name == "__transaction_state"
}

func (b *Broker) topicMetadata(t *topic) kmsg.MetadataResponseTopic {
	parts := t.partitions
	mt := kmsg.NewMetadataResponseTopic()
	name := t.meta.Name
	mt.Topic = &name
	mt.TopicID = t.meta.ID
	mt.IsInternal = isInternalTopic(name)
	mt.AuthorizedOperations = -2147483648
	if t.info != nil {
		b.cluster.partitionsMetadata(t.info, &mt)
		return mt
	}
	for _, p := range parts {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p.tp.Partition
		mp.Leader = b.cfg.NodeID
		mp.LeaderEpoch = p.leaderEpoch.Load()
		mp.Replicas = []int32{b.cfg.NodeID}
		mp.ISR = []int32{b.cfg.NodeID}
		mp.OfflineReplicas = []int32{}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}
