package coordinator

import (
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/logstore"
)

// DescribeGroups handles DescribeGroups v0–v6. A Stable group lists its members with their
// metadata and assignment; other states list members without them. An unknown group is
// described as Dead — with GROUP_ID_NOT_FOUND from v6 (KIP-1043).
func (c *Coordinator) DescribeGroups(req *kmsg.DescribeGroupsRequest) *kmsg.DescribeGroupsResponse {
	resp := kmsg.NewPtrDescribeGroupsResponse()
	for _, id := range req.Groups {
		out := kmsg.NewDescribeGroupsResponseGroup()
		out.Group = id
		out.State = Dead.String()
		out.AuthorizedOperations = -2147483648
		if code := c.status(id); code != 0 {
			out.ErrorCode, out.State = code, ""
			resp.Groups = append(resp.Groups, out)
			continue
		}
		g, code := c.lockGroup(id, false)
		if code != 0 {
			out.ErrorCode, out.State = code, ""
			resp.Groups = append(resp.Groups, out)
			continue
		}
		if g == nil {
			if req.Version >= 6 {
				out.ErrorCode = errGroupIDNotFound
				msg := "Group " + id + " not found."
				out.ErrorMessage = &msg
			}
			resp.Groups = append(resp.Groups, out)
			continue
		}
		if g.cg != nil {
			g.unlock()
			describeNotClassic(&out, req.Version) // a consumer group: ConsumerGroupDescribe
			resp.Groups = append(resp.Groups, out)
			continue
		}
		out.State, out.ProtocolType = g.state.String(), g.protocolType
		if g.state == Stable {
			out.Protocol = g.protocolName
		}
		for _, m := range g.sortedMembers() {
			dm := kmsg.NewDescribeGroupsResponseGroupMember()
			dm.MemberID, dm.InstanceID, dm.ClientID, dm.ClientHost = m.id, m.instanceID, m.clientID, m.clientHost
			dm.ProtocolMetadata, dm.MemberAssignment = []byte{}, []byte{}
			if g.state == Stable {
				dm.ProtocolMetadata = orEmpty(m.metadata(g.protocolName))
				dm.MemberAssignment = orEmpty(m.assignment)
			}
			out.Members = append(out.Members, dm)
		}
		g.unlock()
		resp.Groups = append(resp.Groups, out)
	}
	return resp
}

func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// ListGroups handles ListGroups v0–v5: every group, filtered by state (v4+, any case) and by
// type (v5+: "classic" or "consumer", any case). A consumer group's state is its KIP-848 one.
// With Config.PartitionOwnership, the groups of the partitions served here; while a partition
// elected here loads, they come with COORDINATOR_LOAD_IN_PROGRESS (Kafka's handleListGroups).
func (c *Coordinator) ListGroups(req *kmsg.ListGroupsRequest) *kmsg.ListGroupsResponse {
	resp := kmsg.NewPtrListGroupsResponse()
	if c.closed.Load() {
		resp.ErrorCode = errNotCoordinator
		return resp
	}
	if c.cfg.PartitionOwnership {
		c.mu.Lock()
		if c.loadingLocked() {
			resp.ErrorCode = errCoordinatorLoadInProgress
		}
		c.mu.Unlock()
	}
	classic, consumer := typesWanted(req.TypesFilter)
	for _, g := range c.snapshot() {
		g.mu.Lock()
		state, ptype := g.state, g.protocolType
		listed, gtype := g.listedState()
		g.unlock()
		if state == Dead || gtype == "classic" && !classic || gtype == "consumer" && !consumer {
			continue
		}
		if len(req.StatesFilter) > 0 {
			ok := false
			for _, s := range req.StatesFilter {
				ok = ok || strings.EqualFold(s, listed)
			}
			if !ok {
				continue
			}
		}
		lg := kmsg.NewListGroupsResponseGroup()
		lg.Group, lg.ProtocolType, lg.GroupState, lg.GroupType = g.id, ptype, listed, gtype
		resp.Groups = append(resp.Groups, lg)
	}
	return resp
}

// DeleteGroups handles DeleteGroups v0–v2: an Empty group dies with its offsets (tombstones
// for each, and for its metadata); a group with members is NON_EMPTY_GROUP; an unknown one
// GROUP_ID_NOT_FOUND.
func (c *Coordinator) DeleteGroups(req *kmsg.DeleteGroupsRequest) *kmsg.DeleteGroupsResponse {
	resp := kmsg.NewPtrDeleteGroupsResponse()
	for _, id := range req.Groups {
		out := kmsg.NewDeleteGroupsResponseGroup()
		out.Group = id
		out.ErrorCode = c.deleteGroup(id)
		resp.Groups = append(resp.Groups, out)
	}
	return resp
}

func (c *Coordinator) deleteGroup(id string) int16 {
	if code := c.status(id); code != 0 {
		return code
	}
	g, code := c.lockGroup(id, false)
	if code != 0 {
		return code
	}
	if g == nil {
		return errGroupIDNotFound
	}
	defer g.unlock()
	if g.state != Empty {
		return errNonEmptyGroup
	}
	recs := make([]logstore.Record, 0, len(g.offsets)+1)
	for tp := range g.offsets {
		recs = append(recs, logstore.Record{Key: offsetKey(g.id, tp)})
	}
	recs = append(recs, logstore.Record{Key: groupKey(g.id)})
	recs = append(recs, g.consumerTombstones()...)
	if err := c.appendTombstones(g.partition, recs); err != nil {
		c.log.Warn("delete group", "group", id, "err", err)
		return appendErrorCode(err)
	}
	c.metrics.offsets.Add(-int64(len(g.offsets)))
	clear(g.offsets)
	c.log.Info("deleted group", "group", id, "offsets", len(recs)-1)
	g.kill()
	return 0
}
