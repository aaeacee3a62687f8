package broker

import (
	"strconv"
	"strings"

	"github.com/spate-broker/spate/logstore"
)

// configDef is one topic config as Kafka defines it: its name, type, default, a validator and
// how it applies to the log. DescribeConfigs lists every one of them.
type configDef struct {
	name  string
	typ   int8 // kmsg ConfigType: 1 boolean, 2 string, 3 int, 4 short, 5 long, 6 double, 7 list, 8 class, 9 password
	def   string
	valid func(v string) bool
	apply func(c *logstore.Config, v string)
	doc   string
}

const (
	cfgBool   = 1
	cfgString = 2
	cfgInt    = 3
	cfgLong   = 5
	cfgDouble = 6
	cfgList   = 7
	cfgClass  = 8
)

func longAtLeast(min int64) func(string) bool {
	return func(v string) bool {
		n, err := strconv.ParseInt(v, 10, 64)
		return err == nil && n >= min
	}
}

func oneOf(vals ...string) func(string) bool {
	return func(v string) bool {
		for _, x := range vals {
			if v == x {
				return true
			}
		}
		return false
	}
}

func parseLong(v string) int64 { n, _ := strconv.ParseInt(v, 10, 64); return n }

func isBool(v string) bool { return v == "true" || v == "false" }

func isDouble(v string) bool { _, err := strconv.ParseFloat(v, 64); return err == nil }

const maxLong = "9223372036854775807"

// topicConfigDefs lists the topic configs in Kafka's order of documentation. Configs that do
// not change Spate's behaviour yet are accepted and reported (clients and tools set them).
var topicConfigDefs = []configDef{
	{name: "cleanup.policy", typ: cfgList, def: "delete", valid: func(v string) bool {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "delete" && p != "compact" {
				return false
			}
		}
		return v != ""
	}, apply: func(c *logstore.Config, v string) { c.Compacted = strings.Contains(v, "compact") }},
	{name: "compression.type", typ: cfgString, def: "producer", valid: oneOf("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd")},
	{name: "delete.retention.ms", typ: cfgLong, def: "86400000", valid: longAtLeast(0),
		apply: func(c *logstore.Config, v string) { c.DeleteRetentionMs = parseLong(v) }},
	{name: "file.delete.delay.ms", typ: cfgLong, def: "60000", valid: longAtLeast(0)},
	{name: "flush.messages", typ: cfgLong, def: maxLong, valid: longAtLeast(1),
		apply: func(c *logstore.Config, v string) { c.FlushMessages = parseLong(v) }},
	{name: "flush.ms", typ: cfgLong, def: maxLong, valid: longAtLeast(0),
		apply: func(c *logstore.Config, v string) { c.FlushMs = max(parseLong(v), 1) }},
	{name: "follower.replication.throttled.replicas", typ: cfgList, def: "", valid: func(string) bool { return true }},
	{name: "index.interval.bytes", typ: cfgInt, def: "4096", valid: longAtLeast(0),
		apply: func(c *logstore.Config, v string) { c.IndexIntervalBytes = max(parseLong(v), 1) }},
	{name: "leader.replication.throttled.replicas", typ: cfgList, def: "", valid: func(string) bool { return true }},
	{name: "local.retention.bytes", typ: cfgLong, def: "-2", valid: longAtLeast(-2)},
	{name: "local.retention.ms", typ: cfgLong, def: "-2", valid: longAtLeast(-2)},
	{name: "max.compaction.lag.ms", typ: cfgLong, def: maxLong, valid: longAtLeast(1),
		apply: func(c *logstore.Config, v string) { c.MaxCompactionLagMs = parseLong(v) }},
	{name: "max.message.bytes", typ: cfgInt, def: "1048588", valid: longAtLeast(0),
		apply: func(c *logstore.Config, v string) { c.MaxMessageBytes = max(parseLong(v), 1) }},
	{name: "message.timestamp.after.max.ms", typ: cfgLong, def: maxLong, valid: longAtLeast(0)},
	{name: "message.timestamp.before.max.ms", typ: cfgLong, def: maxLong, valid: longAtLeast(0)},
	{name: "message.timestamp.type", typ: cfgString, def: "CreateTime", valid: oneOf("CreateTime", "LogAppendTime"),
		apply: func(c *logstore.Config, v string) { c.LogAppendTime = v == "LogAppendTime" }},
	{name: "min.cleanable.dirty.ratio", typ: cfgDouble, def: "0.5", valid: isDouble,
		apply: func(c *logstore.Config, v string) { c.MinCleanableDirtyRatio, _ = strconv.ParseFloat(v, 64) }},
	{name: "min.compaction.lag.ms", typ: cfgLong, def: "0", valid: longAtLeast(0),
		apply: func(c *logstore.Config, v string) { c.MinCompactionLagMs = parseLong(v) }},
	{name: "min.insync.replicas", typ: cfgInt, def: "1", valid: longAtLeast(1)},
	{name: "preallocate", typ: cfgBool, def: "false", valid: isBool},
	{name: "remote.storage.enable", typ: cfgBool, def: "false", valid: oneOf("false")},
	{name: "retention.bytes", typ: cfgLong, def: "-1", valid: longAtLeast(-1),
		apply: func(c *logstore.Config, v string) { c.RetentionBytes = parseLong(v) }},
	{name: "retention.ms", typ: cfgLong, def: "604800000", valid: longAtLeast(-1),
		apply: func(c *logstore.Config, v string) { c.RetentionMs = parseLong(v) }},
	{name: "segment.bytes", typ: cfgInt, def: "1073741824", valid: longAtLeast(14),
		apply: func(c *logstore.Config, v string) { c.SegmentBytes = parseLong(v) }},
	{name: "segment.index.bytes", typ: cfgInt, def: "10485760", valid: longAtLeast(4),
		apply: func(c *logstore.Config, v string) { c.SegmentIndexBytes = max(parseLong(v), 16) }},
	{name: "segment.jitter.ms", typ: cfgLong, def: "0", valid: longAtLeast(0)},
	{name: "segment.ms", typ: cfgLong, def: "604800000", valid: longAtLeast(1),
		apply: func(c *logstore.Config, v string) { c.SegmentMs = parseLong(v) }},
	{name: "unclean.leader.election.enable", typ: cfgBool, def: "false", valid: isBool},
}

var configDefsByName = func() map[string]*configDef {
	m := map[string]*configDef{}
	for i := range topicConfigDefs {
		m[topicConfigDefs[i].name] = &topicConfigDefs[i]
	}
	return m
}()

// validateTopicConfig returns a Kafka error code and message for an unknown or invalid value.
func validateTopicConfig(name string, value *string) (int16, string) {
	d := configDefsByName[name]
	if d == nil {
		return errInvalidConfig, "Unknown topic config name: " + name
	}
	if value == nil {
		return 0, ""
	}
	if !d.valid(*value) {
		return errInvalidConfig, "Invalid value " + *value + " for configuration " + name
	}
	return 0, ""
}

// logConfig builds a log's config from the broker's defaults and the topic's overrides. A
// topic whose cleanup.policy lacks "delete" (compact only, as __consumer_offsets) keeps its
// segments: retention.ms and retention.bytes apply to "delete" only, as in Kafka
// (UnifiedLog.deleteOldSegments).
func logConfig(base logstore.Config, overrides map[string]string) logstore.Config {
	c := base
	for _, d := range topicConfigDefs {
		if v, ok := overrides[d.name]; ok && d.apply != nil {
			d.apply(&c, v)
		}
	}
	if p, ok := overrides["cleanup.policy"]; ok && !strings.Contains(p, "delete") {
		c.RetentionMs, c.RetentionBytes = -1, -1
	}
	return c
}
