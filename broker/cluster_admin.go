package broker

// Metadata writes in cluster mode: each goes to this node's controller, or — when another
// node's controller is active — is forwarded to that node as a Kafka request, which handles
// it as its own. A successful write is answered once the local image applier shows it.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/controller"
	"github.com/spate-broker/spate/coordinator/txn"
)

// leaderOf reports whether err says this node's controller is not the active one, and the
// active controller's id (-1 when unknown: the forwarder then falls back to the controller
// bootstrap servers, or waits for an election on a voter; forward.go).
func leaderOf(err error) (int32, bool) {
	var nl *controller.NotLeaderError
	if errors.As(err, &nl) {
		return nl.LeaderID, true
	}
	return -1, false
}

func (c *cluster) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.base, c.opTimeout())
}

// internalRF is the replication factor of the internal topics: 3, or fewer when fewer
// brokers are registered (Kafka's offsets.topic.replication.factor needs that many).
func (c *cluster) internalRF() int16 {
	n := len(c.ctl.Image().Brokers())
	return int16(max(1, min(3, n)))
}

func (c *cluster) createTopic(name string, partitions int32, rf int16, assignments map[int32][]int32, configs map[string]string, validateOnly bool) (*topic, int16, string) {
	if isInternalTopic(name) && rf < 0 {
		rf = c.internalRF()
	}
	spec := controller.TopicSpec{Name: name, NumPartitions: partitions, ReplicationFactor: rf, Assignments: assignments, Configs: configs}
	if len(assignments) > 0 {
		spec.NumPartitions, spec.ReplicationFactor = -1, -1
	}
	ctx, cancel := c.ctx()
	defer cancel()
	res, err := c.ctl.CreateTopics(ctx, []controller.TopicSpec{spec}, validateOnly)
	var code int16
	var msg string
	var id [16]byte
	if leader, ok := leaderOf(err); ok {
		code, msg, id, err = c.forwardCreateTopic(ctx, leader, spec, validateOnly)
	} else if err == nil {
		code, msg, id = res[0].ErrorCode, res[0].ErrorMessage, res[0].TopicID
	}
	if err != nil {
		return nil, controller.ErrorCode(err), err.Error()
	}
	if code != 0 {
		return nil, code, msg
	}
	if validateOnly {
		return &topic{meta: topicMeta{Name: name, Partitions: partitions, Configs: configs}}, 0, ""
	}
	if err := c.waitImage(ctx, func(img *controller.Image) bool { return img.TopicByID(id) != nil }); err != nil {
		return nil, errRequestTimedOut, "topic created, not yet visible here: " + err.Error()
	}
	return c.b.topics.getByID(id), 0, ""
}

func (c *cluster) forwardCreateTopic(ctx context.Context, leader int32, spec controller.TopicSpec, validateOnly bool) (int16, string, [16]byte, error) {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.SetVersion(7)
	req.ValidateOnly, req.TimeoutMillis = validateOnly, int32(c.opTimeout().Milliseconds())
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = spec.Name, spec.NumPartitions, spec.ReplicationFactor
	ps := make([]int32, 0, len(spec.Assignments))
	for p := range spec.Assignments {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	for _, p := range ps {
		a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		a.Partition, a.Replicas = p, spec.Assignments[p]
		rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
	}
	for k, v := range spec.Configs {
		cfg := kmsg.NewCreateTopicsRequestTopicConfig()
		val := v
		cfg.Name, cfg.Value = k, &val
		rt.Configs = append(rt.Configs, cfg)
	}
	req.Topics = append(req.Topics, rt)
	r, err := c.fwd.forwardAdmin(ctx, leader, req)
	if err != nil {
		return 0, "", [16]byte{}, err
	}
	out := r.(*kmsg.CreateTopicsResponse).Topics
	if len(out) != 1 {
		return errUnknownServerError, "forwarded CreateTopics: malformed answer", [16]byte{}, nil
	}
	msg := ""
	if out[0].ErrorMessage != nil {
		msg = *out[0].ErrorMessage
	}
	return out[0].ErrorCode, msg, out[0].TopicID, nil
}

func (c *cluster) deleteTopic(name string, id [16]byte) int16 {
	ctx, cancel := c.ctx()
	defer cancel()
	ref := controller.TopicRef{Name: name, ID: id}
	if id != ([16]byte{}) {
		ref.Name = ""
	}
	res, err := c.ctl.DeleteTopics(ctx, []controller.TopicRef{ref})
	var code int16
	var gone [16]byte
	if leader, ok := leaderOf(err); ok {
		req := kmsg.NewPtrDeleteTopicsRequest()
		req.SetVersion(6)
		req.TimeoutMillis = int32(c.opTimeout().Milliseconds())
		rt := kmsg.NewDeleteTopicsRequestTopic()
		if id != ([16]byte{}) {
			rt.TopicID = id
		} else {
			n := name
			rt.Topic = &n
		}
		req.Topics = append(req.Topics, rt)
		var r kmsg.Response
		if r, err = c.fwd.forwardAdmin(ctx, leader, req); err == nil {
			out := r.(*kmsg.DeleteTopicsResponse).Topics
			if len(out) != 1 {
				return errUnknownServerError
			}
			code, gone = out[0].ErrorCode, out[0].TopicID
		}
	} else if err == nil {
		code, gone = res[0].ErrorCode, res[0].TopicID
	}
	if err != nil {
		return controller.ErrorCode(err)
	}
	if code != 0 {
		return code
	}
	if err := c.waitImage(ctx, func(img *controller.Image) bool { return img.TopicByID(gone) == nil }); err != nil {
		return errRequestTimedOut
	}
	return 0
}

func (c *cluster) createPartitions(name string, count int32, validateOnly bool) (int16, string) {
	ctx, cancel := c.ctx()
	defer cancel()
	res, err := c.ctl.CreatePartitions(ctx, []controller.PartitionsSpec{{Topic: name, Count: count}}, validateOnly)
	var code int16
	var msg string
	if leader, ok := leaderOf(err); ok {
		req := kmsg.NewPtrCreatePartitionsRequest()
		req.SetVersion(3)
		req.ValidateOnly, req.TimeoutMillis = validateOnly, int32(c.opTimeout().Milliseconds())
		rt := kmsg.NewCreatePartitionsRequestTopic()
		rt.Topic, rt.Count = name, count
		req.Topics = append(req.Topics, rt)
		var r kmsg.Response
		if r, err = c.fwd.forwardAdmin(ctx, leader, req); err == nil {
			out := r.(*kmsg.CreatePartitionsResponse).Topics
			if len(out) != 1 {
				return errUnknownServerError, "forwarded CreatePartitions: malformed answer"
			}
			code = out[0].ErrorCode
			if out[0].ErrorMessage != nil {
				msg = *out[0].ErrorMessage
			}
		}
	} else if err == nil {
		code, msg = res[0].ErrorCode, res[0].ErrorMessage
	}
	if err != nil {
		return controller.ErrorCode(err), err.Error()
	}
	if code != 0 || validateOnly {
		return code, msg
	}
	if err := c.waitImage(ctx, func(img *controller.Image) bool {
		t := img.Topic(name)
		return t != nil && int32(len(t.Partitions)) >= count
	}); err != nil {
		return errRequestTimedOut, err.Error()
	}
	return 0, ""
}

// setTopicConfigs replaces a topic's overrides (already validated by the caller).
func (c *cluster) setTopicConfigs(name string, configs map[string]string) int16 {
	ctx, cancel := c.ctx()
	defer cancel()
	cur := c.ctl.Image().Topic(name)
	if cur == nil {
		return errUnknownTopicOrPartition
	}
	change := controller.ConfigChange{ResourceType: controller.ConfigTopic, ResourceName: name, Set: configs}
	for k := range cur.Configs {
		if _, ok := configs[k]; !ok {
			change.Delete = append(change.Delete, k)
		}
	}
	res, err := c.ctl.AlterConfigs(ctx, []controller.ConfigChange{change}, false)
	var code int16
	if leader, ok := leaderOf(err); ok {
		// IncrementalAlterConfigs carries set and delete as the change is.
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		req.SetVersion(1)
		rr := kmsg.NewIncrementalAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, name
		for k, v := range configs {
			cfg := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
			val := v
			cfg.Name, cfg.Op, cfg.Value = k, kmsg.IncrementalAlterConfigOpSet, &val
			rr.Configs = append(rr.Configs, cfg)
		}
		for _, k := range change.Delete {
			cfg := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
			cfg.Name, cfg.Op = k, kmsg.IncrementalAlterConfigOpDelete
			rr.Configs = append(rr.Configs, cfg)
		}
		req.Resources = append(req.Resources, rr)
		var r kmsg.Response
		if r, err = c.fwd.forwardAdmin(ctx, leader, req); err == nil {
			out := r.(*kmsg.IncrementalAlterConfigsResponse).Resources
			if len(out) != 1 {
				return errUnknownServerError
			}
			code = out[0].ErrorCode
		}
	} else if err == nil {
		code = res[0].ErrorCode
	}
	if err != nil {
		return controller.ErrorCode(err)
	}
	if code != 0 {
		return code
	}
	if err := c.waitImage(ctx, func(img *controller.Image) bool {
		t := img.Topic(name)
		if t == nil || len(t.Configs) != len(configs) {
			return false
		}
		for k, v := range configs {
			if t.Configs[k] != v {
				return false
			}
		}
		return true
	}); err != nil {
		return errRequestTimedOut
	}
	return 0
}

// allocateProducerIDs returns a block of producer ids from the active controller.
func (c *cluster) allocateProducerIDs() (first, size int64, err error) {
	ctx, cancel := c.ctx()
	defer cancel()
	for {
		epoch := c.epoch.Load()
		if epoch == 0 {
			select {
			case <-ctx.Done():
				return 0, 0, fmt.Errorf("allocate producer ids: not registered: %w", ctx.Err())
			case <-c.stop:
				return 0, 0, controller.ErrClosed
			default:
			}
			if !c.sleep(50 * time.Millisecond) {
				return 0, 0, controller.ErrClosed
			}
			continue
		}
		first, size, err = c.ctl.AllocateProducerIDs(ctx, c.self, epoch)
		leader, ok := leaderOf(err)
		if !ok {
			return first, size, err
		}
		req := kmsg.NewPtrAllocateProducerIDsRequest()
		req.BrokerID, req.BrokerEpoch = c.self, epoch
		var out *kmsg.AllocateProducerIDsResponse
		err = c.fwd.toLeader(ctx, leader, func(id int32) (int16, error) {
			r, err := c.fwd.request(ctx, id, req)
			if err != nil {
				return 0, err
			}
			out = r.(*kmsg.AllocateProducerIDsResponse)
			return out.ErrorCode, nil
		})
		if err != nil {
			return 0, 0, err
		}
		if out.ErrorCode != 0 {
			return 0, 0, &controller.Error{Code: out.ErrorCode, Message: "producer ids refused"}
		}
		return out.ProducerIDStart, int64(out.ProducerIDLen), nil
	}
}

// sendMarkers asks a partition leader on another node to write transaction markers
// (WriteTxnMarkers), filling codes[idx[i]] with each partition's answer; a failed request
// answers every partition with NOT_LEADER_OR_FOLLOWER, which the coordinator retries.
func (c *cluster) sendMarkers(leader int32, pid int64, epoch int16, commit bool, coordinatorEpoch int32, parts []txn.TopicPartition, idx []int, codes []int16) {
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	req.SetVersion(1)
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.Committed, m.CoordinatorEpoch = pid, epoch, commit, coordinatorEpoch
	byTopic := map[string]int{}
	for _, i := range idx {
		tp := parts[i]
		j, ok := byTopic[tp.Topic]
		if !ok {
			j = len(m.Topics)
			byTopic[tp.Topic] = j
			mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
			mt.Topic = tp.Topic
			m.Topics = append(m.Topics, mt)
		}
		m.Topics[j].Partitions = append(m.Topics[j].Partitions, tp.Partition)
	}
	req.Markers = append(req.Markers, m)
	for _, i := range idx {
		codes[i] = errNotLeaderOrFollower
	}
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.fwd.request(ctx, leader, req)
	if err != nil {
		c.b.log.Debug("write markers", "leader", leader, "err", err)
		return
	}
	resp := r.(*kmsg.WriteTxnMarkersResponse)
	for _, rm := range resp.Markers {
		for _, rt := range rm.Topics {
			for _, rp := range rt.Partitions {
				for _, i := range idx {
					if parts[i].Topic != rt.Topic || parts[i].Partition != rp.Partition {
						continue
					}
					codes[i] = rp.ErrorCode
					if _, exists := c.ctl.Image().Partition(rt.Topic, rp.Partition); exists && rp.ErrorCode == errUnknownTopicOrPartition {
						// The leader has not applied the partition yet (its metadata lags
						// ours): retried, as Kafka's marker channel does. Only a partition
						// gone from the metadata counts as done.
						codes[i] = errNotLeaderOrFollower
					}
				}
			}
		}
	}
}
