package broker

// DescribeCluster v0–v1 (KIP-700): the cluster id, the controller (this node: it runs the
// controller too) and the brokers (this node, with its advertised host, port and rack). v1 has
// endpoint_type: this listener is a BROKER (1) endpoint; asking for CONTROLLER (2) is
// MISMATCHED_ENDPOINT_TYPE and any other type UNSUPPORTED_ENDPOINT_TYPE (INVALID_REQUEST in
// v0, which has no such codes), as the Java broker (AuthHelper.computeDescribeClusterResponse)
// answers. cluster_authorized_operations is -2147483648 unless requested; when requested it
// is every operation a CLUSTER supports, as Kafka answers without an authorizer.

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
		if code, msg := describeClusterEndpoint(h.version, req.EndpointType); code != 0 {
			b.metrics.failed(h.key)
			resp.ErrorCode, resp.ErrorMessage = code, &msg
			return resp
		}
		resp.ClusterID = b.cfg.ClusterID
		resp.ControllerID = b.cfg.NodeID
		if c := b.cluster; c != nil {
			resp.ControllerID, _ = c.ctl.Leader()
		}
		for _, mb := range b.brokerList() {
			db := kmsg.NewDescribeClusterResponseBroker()
			db.NodeID, db.Host, db.Port, db.Rack = mb.NodeID, mb.Host, mb.Port, mb.Rack
			resp.Brokers = append(resp.Brokers, db)
		}
		if req.IncludeClusterAuthorizedOperations {
			resp.ClusterAuthorizedOperations = clusterAuthorizedOperations
		}
		return resp
	})
}

func describeClusterEndpoint(version int16, typ int8) (int16, string) {
	mismatched, unsupported := errMismatchedEndpointType, errUnsupportedEndpointType
	if version == 0 {
		mismatched, unsupported = errInvalidRequest, errInvalidRequest
	}
	switch typ {
	case 1:
		return 0, ""
	case 2:
		return mismatched, "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER"
	}
	return unsupported, "Unsupported endpoint type " + strconv.Itoa(int(typ))
}
