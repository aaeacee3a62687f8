package broker

// DescribeCluster v0–v1 (KIP-700, KIP-919): the cluster id, the controller and the brokers.
// v1 has endpoint_type. A broker's listener is a BROKER (1) endpoint: it lists the unfenced
// brokers with the controller id clients should use (clientControllerID: in a cluster the
// active controller when it is a broker, else this node, which forwards); asking it for
// CONTROLLER (2) is MISMATCHED_ENDPOINT_TYPE. A controller-only node's listener is a
// CONTROLLER endpoint (KIP-919): it lists the registered controllers that are voters, with
// their controller endpoints, and the active controller's id; asking it for BROKER is
// MISMATCHED_ENDPOINT_TYPE. Any other type is UNSUPPORTED_ENDPOINT_TYPE (INVALID_REQUEST in
// v0, which has no such codes and always means BROKER), as the Java broker
// (AuthHelper.computeDescribeClusterResponse) answers. cluster_authorized_operations is
// -2147483648 unless requested; when requested it is every operation a CLUSTER supports, as
// Kafka answers without an authorizer.

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// clusterAuthorizedOperations is the bit field of AclEntry.supportedOperations(CLUSTER).
var clusterAuthorizedOperations = func() int32 {
	var bits int32
	for _, op := range []kmsg.ACLOperation{kmsg.ACLOperationCreate, kmsg.ACLOperationClusterAction,
		kmsg.ACLOperationDescribeConfigs, kmsg.ACLOperationAlterConfigs, kmsg.ACLOperationIdempotentWrite,
		kmsg.ACLOperationAlter, kmsg.ACLOperationDescribe} {
		bits |= 1 << op
	}
	return bits
}()

func init() {
	register(kmsg.DescribeCluster, 0, 1, false, func(b *Broker, h *reqHeader, req *kmsg.DescribeClusterRequest) kmsg.Response {
		resp := kmsg.NewPtrDescribeClusterResponse()
		c := b.cluster
		controllerOnly := c != nil && c.controllerOnly()
		if code, msg := describeClusterEndpoint(h.version, req.EndpointType, controllerOnly); code != 0 {
			b.metrics.failed(h.key)
			resp.ErrorCode, resp.ErrorMessage = code, &msg
			return resp
		}
		resp.EndpointType = req.EndpointType
		resp.ClusterID = b.cfg.ClusterID
		resp.ControllerID = b.cfg.NodeID
		switch {
		case controllerOnly:
			resp.ControllerID, _ = c.ctl.Leader()
			resp.Brokers = c.controllerList()
		case c != nil:
			resp.ControllerID = c.clientControllerID()
			fallthrough
		default:
			for _, mb := range b.brokerList() {
				db := kmsg.NewDescribeClusterResponseBroker()
				db.NodeID, db.Host, db.Port, db.Rack = mb.NodeID, mb.Host, mb.Port, mb.Rack
				resp.Brokers = append(resp.Brokers, db)
			}
		}
		if req.IncludeClusterAuthorizedOperations {
			resp.ClusterAuthorizedOperations = clusterAuthorizedOperations
		}
		return resp
	})
}

// describeClusterEndpoint checks the endpoint type asked of this listener: BROKER (1), or
// CONTROLLER (2) on a controller-only node.
func describeClusterEndpoint(version int16, typ int8, controllerOnly bool) (int16, string) {
	mismatched, unsupported := errMismatchedEndpointType, errUnsupportedEndpointType
	if version == 0 {
		mismatched, unsupported = errInvalidRequest, errInvalidRequest
	}
	switch {
	case typ == 1 && !controllerOnly, typ == 2 && controllerOnly:
		return 0, ""
	case typ == 2:
		return mismatched, "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER"
	case typ == 1:
		return mismatched, "The request was sent to an endpoint of type CONTROLLER, but we wanted an endpoint of type BROKER"
	}
	return unsupported, "Unsupported endpoint type " + strconv.Itoa(int(typ))
}

// controllerList is DescribeCluster's nodes on a controller listener: the registered
// controllers that are voters of the latest Raft configuration this node knows, with their
// controller endpoints.
func (c *cluster) controllerList() []kmsg.DescribeClusterResponseBroker {
	servers, _ := c.ctl.Servers()
	var out []kmsg.DescribeClusterResponseBroker
	for _, ci := range c.ctl.Image().Controllers() {
		s, ok := findServer(servers, ci.ID)
		if !ok || !s.Voter || len(ci.Endpoints) == 0 {
			continue
		}
		db := kmsg.NewDescribeClusterResponseBroker()
		db.NodeID, db.Host, db.Port = ci.ID, ci.Endpoints[0].Host, ci.Endpoints[0].Port
		out = append(out, db)
	}
	return out
}
