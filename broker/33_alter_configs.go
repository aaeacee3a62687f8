package broker

// AlterConfigs v0–v2 (the original, non-incremental API): a TOPIC resource's configs replace
// the topic's whole override set; configs left out return to their defaults. As the Java
// broker (ConfigAdminManager.preprocess, then the controller's legacyAlterConfigs):
//
//   - a resource (type and name) given twice: INVALID_REQUEST for both;
//   - a config name given twice in a resource: INVALID_REQUEST "Error due to duplicate config
//     keys"; a null value: INVALID_REQUEST "Null value not supported for : <names>";
//   - TOPIC: "" is INVALID_REQUEST (no default topic resource), a bad name
//     INVALID_TOPIC_EXCEPTION; then the new set is validated (an unknown name or a bad value
//     is INVALID_CONFIG with Kafka's message); then an unknown topic is
//     UNKNOWN_TOPIC_OR_PARTITION. validate_only stops there. Otherwise the set is applied
//     through topicManager.setConfigs: persisted, and the logs take the new settings
//     (max.message.bytes at once, segment settings from the next roll, retention at the next
//     retention pass).
//   - BROKER: "" (cluster default) or this node's id. Spate has no dynamic broker configs, so
//     setting any is INVALID_REQUEST "Cannot update these configs dynamically: Set(...)" (the
//     Java broker's answer for a static config); an empty set changes nothing and succeeds.
//   - any other type (BROKER_LOGGER included: only IncrementalAlterConfigs sets log levels):
//     INVALID_REQUEST "Unknown resource type N".
//
// Results keep the request's order. Config changes are serialized (configAlterMu) so the
// read-modify-write of IncrementalAlterConfigs cannot lose a concurrent change. It runs on a
// goroutine: applying writes the topics file.

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.AlterConfigs, 0, 2, true, func(b *Broker, h *reqHeader, req *kmsg.AlterConfigsRequest) kmsg.Response {
		resp := kmsg.NewPtrAlterConfigsResponse()
		dup := duplicateConfigResources(len(req.Resources), func(i int) configResourceKey {
			return configResourceKey{req.Resources[i].ResourceType, req.Resources[i].ResourceName}
		})
		for i, r := range req.Resources {
			out := kmsg.NewAlterConfigsResponseResource()
			out.ResourceType, out.ResourceName = r.ResourceType, r.ResourceName
			code, msg := errInvalidRequest, "Each resource must appear at most once."
			if !dup[i] {
				ents := make([]configChange, 0, len(r.Configs))
				for _, c := range r.Configs {
					ents = append(ents, configChange{name: c.Name, op: kmsg.IncrementalAlterConfigOpSet, value: c.Value})
				}
				code, msg = b.alterConfigResource(r.ResourceType, r.ResourceName, ents, false, req.ValidateOnly)
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

// configAlterMu serializes config changes: each reads a topic's overrides, computes the new
// set and writes it through topicManager.setConfigs.
var configAlterMu sync.Mutex

type configResourceKey struct {
	typ  kmsg.ConfigResourceType
	name string
}

// duplicateConfigResources marks every resource whose type and name appear more than once.
func duplicateConfigResources(n int, key func(i int) configResourceKey) []bool {
	count := make(map[configResourceKey]int, n)
	for i := 0; i < n; i++ {
		count[key(i)]++
	}
	dup := make([]bool, n)
	for i := range dup {
		dup[i] = count[key(i)] > 1
	}
	return dup
}

// configChange is one change of AlterConfigs (always SET) or IncrementalAlterConfigs.
type configChange struct {
	name  string
	op    kmsg.IncrementalAlterConfigOp
	value *string
}

// alterConfigResource checks and applies one resource's changes; incremental selects
// IncrementalAlterConfigs' semantics (changes to the current overrides, BROKER_LOGGER
// allowed) over AlterConfigs' (the changes are the new override set).
func (b *Broker) alterConfigResource(typ kmsg.ConfigResourceType, name string, changes []configChange, incremental, validateOnly bool) (int16, string) {
	seen := make(map[string]bool, len(changes))
	var nulls []string
	for _, c := range changes {
		if seen[c.name] {
			return errInvalidRequest, "Error due to duplicate config keys"
		}
		seen[c.name] = true
		if c.value == nil && c.op != kmsg.IncrementalAlterConfigOpDelete {
			nulls = append(nulls, c.name)
		}
	}
	if len(nulls) > 0 {
		return errInvalidRequest, "Null value not supported for : " + strings.Join(nulls, ", ")
	}
	switch {
	case typ == kmsg.ConfigResourceTypeTopic:
		for _, c := range changes {
			if c.op > kmsg.IncrementalAlterConfigOpSubtract || c.op < 0 {
				return errInvalidRequest, fmt.Sprintf("Unknown operations type %d", c.op)
			}
		}
		return b.alterTopicConfigs(name, changes, incremental, validateOnly)
	case typ == kmsg.ConfigResourceTypeBroker:
		if name != "" {
			if code, msg := b.checkAlterNodeID(name); code != 0 {
				return code, msg
			}
		}
		return alterBrokerConfigs(changes)
	case typ == kmsg.ConfigResourceTypeBrokerLogger && incremental:
		if code, msg := b.checkAlterNodeID(name); code != 0 {
			return code, msg
		}
		return alterBrokerLoggers(changes)
	}
	return errInvalidRequest, fmt.Sprintf("Unknown resource type %d", typ)
}

// checkAlterNodeID checks that a resource names this node (ConfigAdminManager's messages).
func (b *Broker) checkAlterNodeID(name string) (int16, string) {
	id, err := strconv.ParseInt(name, 10, 32)
	if err != nil {
		return errInvalidRequest, "Node id must be an integer, but it is: " + name
	}
	if int32(id) != b.cfg.NodeID {
		return errInvalidRequest, fmt.Sprintf("Unexpected broker id, expected %d, but received %s", b.cfg.NodeID, name)
	}
	return 0, ""
}

// alterBrokerConfigs refuses every change but deletion: Spate's broker configs are static.
func alterBrokerConfigs(changes []configChange) (int16, string) {
	var static []string
	for _, c := range changes {
		switch c.op {
		case kmsg.IncrementalAlterConfigOpDelete:
		case kmsg.IncrementalAlterConfigOpSet, kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			static = append(static, c.name)
		default:
			return errInvalidRequest, fmt.Sprintf("Unknown operations type %d", c.op)
		}
	}
	if len(static) > 0 {
		sort.Strings(static)
		return errInvalidRequest, "Cannot update these configs dynamically: Set(" + strings.Join(static, ", ") + ")"
	}
	return 0, ""
}

// alterBrokerLoggers answers log level changes: Spate has no log4j loggers to name.
func alterBrokerLoggers(changes []configChange) (int16, string) {
	for _, c := range changes {
		switch c.op {
		case kmsg.IncrementalAlterConfigOpSet, kmsg.IncrementalAlterConfigOpDelete:
			return errInvalidConfig, "Logger " + c.name + " does not exist!"
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			return errInvalidRequest, c.op.String() + " operation is not allowed for the BROKER_LOGGER resource"
		default:
			return errInvalidRequest, fmt.Sprintf("Unknown operation type %d is not allowed for the BROKER_LOGGER resource", c.op)
		}
	}
	return 0, ""
}

// alterTopicConfigs computes a topic's new override set, validates it and, unless
// validateOnly, applies it. The order of checks is Kafka's: the name, the configs, then the
// topic's existence.
func (b *Broker) alterTopicConfigs(name string, changes []configChange, incremental, validateOnly bool) (int16, string) {
	if name == "" {
		return errInvalidRequest, "Default topic resources are not allowed."
	}
	if msg := topicNameError(name); msg != "" {
		return errInvalidTopicException, msg
	}
	configAlterMu.Lock()
	defer configAlterMu.Unlock()
	cur, exists := b.topics.configsOf(name)
	next := map[string]string{}
	if incremental {
		for k, v := range cur {
			next[k] = v
		}
	}
	for _, c := range changes {
		if code, msg := applyConfigChange(next, c); code != 0 {
			return code, msg
		}
	}
	if code, msg := validateTopicConfigSet(next); code != 0 {
		return code, msg
	}
	if !exists {
		return errUnknownTopicOrPartition, "The topic '" + name + "' does not exist."
	}
	if validateOnly {
		return 0, ""
	}
	if len(next) == 0 {
		next = nil
	}
	if code := b.topics.setConfigs(name, next); code != 0 {
		return code, ""
	}
	b.log.Info("altered topic configs", "topic", name, "configs", next)
	return 0, ""
}

// applyConfigChange applies one change to an override set (KIP-339 semantics). APPEND and
// SUBTRACT work on list configs only, starting from the default when the topic does not set
// the config.
func applyConfigChange(configs map[string]string, c configChange) (int16, string) {
	switch c.op {
	case kmsg.IncrementalAlterConfigOpSet:
		configs[c.name] = *c.value
	case kmsg.IncrementalAlterConfigOpDelete:
		delete(configs, c.name)
	case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
		d := configDefsByName[c.name]
		if d == nil || d.typ != cfgList {
			return errInvalidConfig, "Can't " + c.op.String() + " to key " + c.name + " because its type is not LIST."
		}
		cur, ok := configs[c.name]
		if !ok {
			cur = d.def
		}
		parts := splitList(cur)
		for _, v := range splitList(*c.value) {
			i := indexOf(parts, v)
			switch {
			case c.op == kmsg.IncrementalAlterConfigOpAppend && i < 0:
				parts = append(parts, v)
			case c.op == kmsg.IncrementalAlterConfigOpSubtract && i >= 0:
				parts = append(parts[:i], parts[i+1:]...)
			}
		}
		configs[c.name] = strings.Join(parts, ",")
	}
	return 0, ""
}

// splitList splits a list config's value, dropping empty parts.
func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

func indexOf(ss []string, s string) int {
	for i, x := range ss {
		if x == s {
			return i
		}
	}
	return -1
}

// validateTopicConfigSet validates a whole override set as Kafka's LogConfig.validate does:
// every name first, then every value (in name order, so the message is deterministic).
func validateTopicConfigSet(configs map[string]string) (int16, string) {
	names := make([]string, 0, len(configs))
	for k := range configs {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if configDefsByName[k] == nil {
			return validateTopicConfig(k, nil)
		}
	}
	for _, k := range names {
		v := configs[k]
		if code, msg := validateTopicConfig(k, &v); code != 0 {
			return code, msg
		}
	}
	return 0, ""
}
