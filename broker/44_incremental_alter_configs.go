package broker

// IncrementalAlterConfigs v0–v1 (KIP-339): each config carries an operation on the current
// overrides — SET (a value), DELETE (back to the default), APPEND and SUBTRACT (add values
// missing from, or remove values present in, a LIST config such as cleanup.policy, starting
// from its default when the topic does not set it). APPEND or SUBTRACT on a config that is
// not a list (or unknown) is INVALID_CONFIG "Can't APPEND to key X because its type is not
// LIST."; an unknown operation is INVALID_REQUEST. A null value is refused except for DELETE.
// The resulting override set is validated and applied as in AlterConfigs (33_alter_configs.go,
// which holds the checks both share, with the Java broker's codes and messages);
// validate_only checks without applying.
//
// BROKER resources accept only DELETE (there are no dynamic broker configs to delete, so it
// changes nothing); BROKER_LOGGER resources must name this node, and since Spate has no log4j
// loggers, SET or DELETE of one is INVALID_CONFIG "Logger X does not exist!" and APPEND or
// SUBTRACT INVALID_REQUEST, as Kafka answers for a logger it does not have.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.IncrementalAlterConfigs, 0, 1, true, func(b *Broker, h *reqHeader, req *kmsg.IncrementalAlterConfigsRequest) kmsg.Response {
		resp := kmsg.NewPtrIncrementalAlterConfigsResponse()
		dup := duplicateConfigResources(len(req.Resources), func(i int) configResourceKey {
			return configResourceKey{req.Resources[i].ResourceType, req.Resources[i].ResourceName}
		})
		for i, r := range req.Resources {
			out := kmsg.NewIncrementalAlterConfigsResponseResource()
			out.ResourceType, out.ResourceName = r.ResourceType, r.ResourceName
			code, msg := errInvalidRequest, "Each resource must appear at most once."
			if !dup[i] {
				changes := make([]configChange, 0, len(r.Configs))
				for _, c := range r.Configs {
					changes = append(changes, configChange{name: c.Name, op: c.Op, value: c.Value})
				}
				code, msg = b.alterConfigResource(r.ResourceType, r.ResourceName, changes, true, req.ValidateOnly)
			}
			if code != 0 {
				b.metrics.failed(h.key)
				out.ErrorCode = code
				if msg != "" {
					out.ErrorMessage = &msg
				}
			}
			resp.Resources = append(resp.Resources, out)
		}
		return resp
	})
}
