package broker

// DescribeConfigs v0–v4. v1+ has each config's source and, when include_synonyms is set, its
// synonyms (the values it falls back to, in order of precedence); v3+ its type and, when
// include_documentation is set, its documentation (null: Spate has none yet). v0 has
// is_default instead of the source. As the Java broker (ConfigHelper.describeConfigs):
//
//   - TOPIC (2): every config of topicConfigDefs with its effective value. A config set on the
//     topic has source TOPIC_CONFIG and the synonym list [the topic's value, then the broker
//     fallback]; otherwise its value is the broker's fallback (STATIC_BROKER_CONFIG when
//     Spate's configuration sets it to something other than Kafka's default, else
//     DEFAULT_CONFIG). A bad topic name is INVALID_TOPIC_EXCEPTION, an unknown topic
//     UNKNOWN_TOPIC_OR_PARTITION.
//   - BROKER (4): "" is the cluster-wide dynamic defaults (none: an empty list); this node's
//     id lists the broker configs Spate has (brokerConfigs), read-only since none can change
//     at run time; another id is INVALID_REQUEST.
//   - BROKER_LOGGER (8): this node's id answers an empty list (Spate has no log4j loggers);
//     "" or another id is INVALID_REQUEST.
//   - Other known types (CLIENT_METRICS, GROUP): INVALID_REQUEST "Unsupported resource type".
//     An unknown type fails the whole request (every resource INVALID_REQUEST), as Kafka's
//     authorization step throws on it.
//
// config_names null or empty means every config; names that do not exist are left out.
// Topic configs are listed in topicConfigDefs' order (by name), broker configs by name. It
// runs on a goroutine: it reads memory only, but takes the topic manager's lock, which
// creations and deletions hold across disk writes.

import (
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.DescribeConfigs, 0, 4, true, func(b *Broker, h *reqHeader, req *kmsg.DescribeConfigsRequest) kmsg.Response {
		return b.describeConfigs(h, req)
	})
}

// invalidRequestMessage is the Java broker's default INVALID_REQUEST message, sent when a
// whole request is refused.
const invalidRequestMessage = "This most likely occurs because of a request being malformed by the client library or the message was sent to an incompatible broker. See the broker logs for more details."

func (b *Broker) describeConfigs(h *reqHeader, req *kmsg.DescribeConfigsRequest) *kmsg.DescribeConfigsResponse {
	resp := kmsg.NewPtrDescribeConfigsResponse()
	for _, r := range req.Resources {
		if !knownConfigResourceType(r.ResourceType) {
			return b.describeConfigsFailed(h, req)
		}
	}
	for _, r := range req.Resources {
		out := kmsg.NewDescribeConfigsResponseResource()
		out.ResourceType, out.ResourceName = r.ResourceType, r.ResourceName
		code, msg := b.describeResource(&r, req.IncludeSynonyms, req.IncludeDocumentation, &out)
		if code != 0 {
			b.metrics.failed(h.key)
			out.ErrorCode, out.Configs = code, nil
			if msg != "" {
				out.ErrorMessage = &msg
			}
		}
		resp.Resources = append(resp.Resources, out)
	}
	return resp
}

func knownConfigResourceType(t kmsg.ConfigResourceType) bool {
	switch t {
	case kmsg.ConfigResourceTypeTopic, kmsg.ConfigResourceTypeBroker, kmsg.ConfigResourceTypeBrokerLogger,
		kmsg.ConfigResourceTypeClientMetrics, kmsg.ConfigResourceTypeGroupConfig:
		return true
	}
	return false
}

// describeConfigsFailed answers every resource with INVALID_REQUEST (Kafka's error response).
func (b *Broker) describeConfigsFailed(h *reqHeader, req *kmsg.DescribeConfigsRequest) *kmsg.DescribeConfigsResponse {
	resp := kmsg.NewPtrDescribeConfigsResponse()
	for _, r := range req.Resources {
		b.metrics.failed(h.key)
		out := kmsg.NewDescribeConfigsResponseResource()
		out.ResourceType, out.ResourceName = r.ResourceType, r.ResourceName
		out.ErrorCode = errInvalidRequest
		msg := invalidRequestMessage
		out.ErrorMessage = &msg
		resp.Resources = append(resp.Resources, out)
	}
	return resp
}

func (b *Broker) describeResource(r *kmsg.DescribeConfigsRequestResource, synonyms, docs bool, out *kmsg.DescribeConfigsResponseResource) (int16, string) {
	want := func(name string) bool { return true }
	if len(r.ConfigNames) > 0 {
		set := make(map[string]bool, len(r.ConfigNames))
		for _, n := range r.ConfigNames {
			set[n] = true
		}
		want = func(name string) bool { return set[name] }
	}
	switch r.ResourceType {
	case kmsg.ConfigResourceTypeTopic:
		if msg := topicNameError(r.ResourceName); msg != "" {
			return errInvalidTopicException, msg
		}
		overrides, ok := b.topics.configsOf(r.ResourceName)
		if !ok {
			return errUnknownTopicOrPartition, ""
		}
		brokers := b.brokerConfigsByName()
		for i := range topicConfigDefs {
			if d := &topicConfigDefs[i]; want(d.name) {
				out.Configs = append(out.Configs, describeTopicConfig(d, overrides, brokers, synonyms, docs))
			}
		}
	case kmsg.ConfigResourceTypeBroker:
		if r.ResourceName == "" {
			return 0, "" // no cluster-wide dynamic defaults
		}
		if id, err := strconv.ParseInt(r.ResourceName, 10, 32); err != nil {
			return errInvalidRequest, "Broker id must be an integer, but it is: " + r.ResourceName
		} else if int32(id) != b.cfg.NodeID {
			return errInvalidRequest, fmt.Sprintf("Unexpected broker id, expected %d or empty string, but received %s", b.cfg.NodeID, r.ResourceName)
		}
		for _, c := range b.brokerConfigs() {
			if want(c.name) {
				out.Configs = append(out.Configs, c.describe(synonyms))
			}
		}
	case kmsg.ConfigResourceTypeBrokerLogger:
		if r.ResourceName == "" {
			return errInvalidRequest, "Broker id must not be empty"
		}
		if id, err := strconv.ParseInt(r.ResourceName, 10, 32); err != nil {
			return errInvalidRequest, "Broker id must be an integer, but it is: " + r.ResourceName
		} else if int32(id) != b.cfg.NodeID {
			return errInvalidRequest, fmt.Sprintf("Unexpected broker id, expected %d but received %s", b.cfg.NodeID, r.ResourceName)
		}
	default:
		return errInvalidRequest, "Unsupported resource type: " + r.ResourceType.String()
	}
	return 0, ""
}

// describeTopicConfig describes one topic config: the topic's value when set, else the
// broker's fallback.
func describeTopicConfig(d *configDef, overrides map[string]string, brokers map[string]*brokerConfig, synonyms, docs bool) kmsg.DescribeConfigsResponseResourceConfig {
	var syns []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym
	if v, ok := overrides[d.name]; ok {
		syns = append(syns, configSynonym(d.name, &v, kmsg.ConfigSourceDynamicTopicConfig))
	}
	if bc := brokers[topicConfigBrokerSynonyms[d.name]]; bc != nil {
		syns = append(syns, bc.synonyms()...)
	}
	c := kmsg.NewDescribeConfigsResponseResourceConfig()
	c.Name = d.name
	def := d.def
	c.Value, c.Source = &def, kmsg.ConfigSourceDefaultConfig
	if len(syns) > 0 {
		c.Value, c.Source = syns[0].Value, syns[0].Source
	}
	c.IsDefault = c.Source == kmsg.ConfigSourceDefaultConfig
	c.ConfigType = kmsg.ConfigType(d.typ)
	if synonyms {
		c.ConfigSynonyms = syns
	}
	if docs && d.doc != "" {
		doc := d.doc
		c.Documentation = &doc
	}
	return c
}

func configSynonym(name string, value *string, source kmsg.ConfigSource) kmsg.DescribeConfigsResponseResourceConfigConfigSynonym {
	s := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
	s.Name, s.Value, s.Source = name, value, source
	return s
}

// topicConfigBrokerSynonyms maps a topic config to the broker config it falls back to
// (Kafka's ServerTopicConfigSynonyms, first name of each).
var topicConfigBrokerSynonyms = map[string]string{
	"cleanup.policy":                  "log.cleanup.policy",
	"compression.type":                "compression.type",
	"delete.retention.ms":             "log.cleaner.delete.retention.ms",
	"file.delete.delay.ms":            "log.segment.delete.delay.ms",
	"flush.messages":                  "log.flush.interval.messages",
	"flush.ms":                        "log.flush.interval.ms",
	"index.interval.bytes":            "log.index.interval.bytes",
	"local.retention.bytes":           "log.local.retention.bytes",
	"local.retention.ms":              "log.local.retention.ms",
	"max.compaction.lag.ms":           "log.cleaner.max.compaction.lag.ms",
	"max.message.bytes":               "message.max.bytes",
	"message.timestamp.after.max.ms":  "log.message.timestamp.after.max.ms",
	"message.timestamp.before.max.ms": "log.message.timestamp.before.max.ms",
	"message.timestamp.type":          "log.message.timestamp.type",
	"min.cleanable.dirty.ratio":       "log.cleaner.min.cleanable.ratio",
	"min.compaction.lag.ms":           "log.cleaner.min.compaction.lag.ms",
	"min.insync.replicas":             "min.insync.replicas",
	"preallocate":                     "log.preallocate",
	"retention.bytes":                 "log.retention.bytes",
	"retention.ms":                    "log.retention.ms",
	"segment.bytes":                   "log.segment.bytes",
	"segment.index.bytes":             "log.index.size.max.bytes",
	"segment.jitter.ms":               "log.roll.jitter.ms",
	"segment.ms":                      "log.roll.ms",
	"unclean.leader.election.enable":  "unclean.leader.election.enable",
}

// brokerConfig is one broker config as DescribeConfigs reports it.
type brokerConfig struct {
	name  string
	typ   int8
	value *string
	def   *string // Kafka's default; nil when it has none
}

// static reports a value set by Spate's configuration rather than left at Kafka's default
// (source STATIC_BROKER_CONFIG).
func (c *brokerConfig) static() bool {
	if c.value == nil || c.def == nil {
		return c.value != nil
	}
	return *c.value != *c.def
}

// synonyms lists where the value comes from: the static setting, then Kafka's default.
func (c *brokerConfig) synonyms() []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym {
	var out []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym
	if c.static() {
		out = append(out, configSynonym(c.name, c.value, kmsg.ConfigSourceStaticBrokerConfig))
	}
	if c.def != nil {
		out = append(out, configSynonym(c.name, c.def, kmsg.ConfigSourceDefaultConfig))
	}
	return out
}

func (c *brokerConfig) describe(synonyms bool) kmsg.DescribeConfigsResponseResourceConfig {
	out := kmsg.NewDescribeConfigsResponseResourceConfig()
	out.Name, out.Value = c.name, c.value
	out.Source = kmsg.ConfigSourceDefaultConfig
	if c.static() {
		out.Source = kmsg.ConfigSourceStaticBrokerConfig
	}
	out.IsDefault = out.Source == kmsg.ConfigSourceDefaultConfig
	out.ReadOnly = true // no dynamic broker configs
	out.ConfigType = kmsg.ConfigType(c.typ)
	if synonyms {
		out.ConfigSynonyms = c.synonyms()
	}
	return out
}

// selectorClass is replica.selector.class: null unless a selector is configured.
func selectorClass(c *Config) *string {
	if c.ReplicaSelector == ReplicaSelectorRack {
		s := rackAwareSelectorClass
		return &s
	}
	return nil
}

// processRoles is process.roles: both roles for a single node.
func processRoles(c *Config) string {
	if !c.Cluster.enabled() {
		return (RoleBroker | RoleController).String()
	}
	return c.Cluster.roles(c.NodeID).String()
}

// brokerConfigs returns this node's configs, sorted by name: those Spate's Config sets, and
// the broker fallbacks of every topic config (the log settings come from Config.Log).
func (b *Broker) brokerConfigs() []brokerConfig {
	c := &b.cfg
	str := func(s string) *string { return &s }
	i64 := func(n int64) *string { return str(strconv.FormatInt(n, 10)) }
	ms := func(d time.Duration) *string { return i64(d.Milliseconds()) }
	dir, err := filepath.Abs(c.DataDir)
	if err != nil {
		dir = c.DataDir
	}
	var rack *string
	if c.Rack != "" {
		rack = str(c.Rack)
	}
	out := []brokerConfig{
		{"advertised.listeners", cfgString, str("PLAINTEXT://" + net.JoinHostPort(c.AdvertisedHost, strconv.Itoa(int(c.AdvertisedPort)))), nil},
		{"auto.create.topics.enable", cfgBool, str(strconv.FormatBool(c.AutoCreateTopics)), str("true")},
		{"broker.id", cfgInt, i64(int64(c.NodeID)), str("-1")},
		{"broker.rack", cfgString, rack, nil},
		{"default.replication.factor", cfgInt, i64(int64(c.DefaultReplication)), str("1")},
		{"delete.topic.enable", cfgBool, str("true"), str("true")},
		{"log.dirs", cfgString, str(dir), nil},
		{"log.retention.check.interval.ms", cfgLong, ms(c.RetentionCheckInterval), str("300000")},
		{"node.id", cfgInt, i64(int64(c.NodeID)), nil},
		{"num.partitions", cfgInt, i64(int64(c.NumPartitions)), str("1")},
		{"process.roles", cfgList, str(processRoles(c)), nil},
		{"replica.selector.class", cfgClass, selectorClass(c), nil},
		{"transaction.abort.timed.out.transaction.cleanup.interval.ms", cfgInt, i64(c.Txn.AbortTimedOutTransactionsIntervalMs), str("10000")},
		{"transaction.max.timeout.ms", cfgInt, i64(c.Txn.TransactionMaxTimeoutMs), str("900000")},
		{"transaction.state.log.num.partitions", cfgInt, i64(int64(c.Txn.StatePartitions)), str("50")},
		{"transactional.id.expiration.ms", cfgInt, i64(c.Txn.TransactionalIDExpirationMs), str("604800000")},
	}
	logValues := b.brokerLogValues()
	for i := range topicConfigDefs {
		d := &topicConfigDefs[i]
		name, ok := topicConfigBrokerSynonyms[d.name]
		if !ok {
			continue
		}
		v := d.def
		if lv, ok := logValues[name]; ok {
			v = lv
		}
		out = append(out, brokerConfig{name, d.typ, str(v), str(d.def)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func (b *Broker) brokerConfigsByName() map[string]*brokerConfig {
	cs := b.brokerConfigs()
	m := make(map[string]*brokerConfig, len(cs))
	for i := range cs {
		m[cs[i].name] = &cs[i]
	}
	return m
}

// brokerLogValues returns the broker-level log settings of Config.Log as the logs see them
// (zero fields take logstore's defaults, as logstore normalizes them).
func (b *Broker) brokerLogValues() map[string]string {
	l := b.cfg.Log
	pos := func(n int64, min int64, def string) string {
		if n < min {
			return def
		}
		return strconv.FormatInt(n, 10)
	}
	nonZero := func(n int64, def string) string {
		if n == 0 {
			return def
		}
		return strconv.FormatInt(n, 10)
	}
	segmentBytes := l.SegmentBytes
	if segmentBytes > 1<<31-1 {
		segmentBytes = 1<<31 - 1
	}
	tsType := "CreateTime"
	if l.LogAppendTime {
		tsType = "LogAppendTime"
	}
	return map[string]string{
		"log.flush.interval.messages": pos(l.FlushMessages, 1, maxLong),
		"log.flush.interval.ms":       pos(l.FlushMs, 1, maxLong),
		"log.index.interval.bytes":    pos(l.IndexIntervalBytes, 1, "4096"),
		"log.index.size.max.bytes":    pos(l.SegmentIndexBytes, 16, "10485760"),
		"log.message.timestamp.type":  tsType,
		"log.retention.bytes":         nonZero(l.RetentionBytes, "-1"),
		"log.retention.ms":            nonZero(l.RetentionMs, "604800000"),
		"log.roll.ms":                 pos(l.SegmentMs, 1, "604800000"),
		"log.segment.bytes":           pos(segmentBytes, 1, "1073741824"),
		"message.max.bytes":           pos(l.MaxMessageBytes, 1, "1048588"),
	}
}

// topicNameError returns Kafka's message (Topic.validate) for an illegal topic name, or "".
func topicNameError(name string) string {
	switch {
	case name == "":
		return "Topic name is illegal, it can't be empty"
	case name == "." || name == "..":
		return `Topic name cannot be "." or ".."`
	case len(name) > 249:
		return "Topic name is illegal, it can't be longer than 249 characters, topic name: " + name
	case !validTopicName(name):
		return `Topic name "` + name + `" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'`
	}
	return ""
}
