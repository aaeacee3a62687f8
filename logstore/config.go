package logstore

import (
	"math"
	"time"
)

// Config holds the per-log settings, named and defaulted as Kafka's topic configs.
type Config struct {
	SegmentBytes       int64 // segment.bytes: roll when the active segment would pass this
	SegmentMs          int64 // segment.ms: roll when the active segment's first batch is this old
	SegmentIndexBytes  int64 // segment.index.bytes: size bound of each index; roll when full
	IndexIntervalBytes int64 // index.interval.bytes: one offset index entry per this many bytes
	RetentionBytes     int64 // retention.bytes: -1 = unbounded
	RetentionMs        int64 // retention.ms: -1 = unbounded
	FlushMessages      int64 // flush.messages: sync after this many unflushed records
	FlushMs            int64 // flush.ms: sync when data has been unflushed this long (run by the owner)
	MaxMessageBytes    int64 // max.message.bytes: largest batch accepted
	LogAppendTime      bool  // message.timestamp.type=LogAppendTime
	// PreallocateBytes is how far ahead of the write cursor the active segment's file is
	// allocated (fallocate) and mapped (not a Kafka setting).
	PreallocateBytes int64
	// Now returns the wall clock in ms; nil means time.Now. Tests set it.
	Now func() int64

	// Log compaction (cleanup.policy=compact, see cleaner.go). Zero values of the two Kafka
	// settings that allow 0 (delete.retention.ms, min.cleanable.dirty.ratio) mean 0: start
	// from DefaultConfig.
	Compacted              bool    // cleanup.policy includes "compact": keyless records are refused and the cleaner runs
	DeleteRetentionMs      int64   // delete.retention.ms: tombstones live this long after their batch was first cleaned
	MinCleanableDirtyRatio float64 // min.cleanable.dirty.ratio: clean when dirty bytes / cleanable bytes reach it
	MinCompactionLagMs     int64   // min.compaction.lag.ms: segments with newer records are not cleaned
	MaxCompactionLagMs     int64   // max.compaction.lag.ms: clean regardless of the ratio once a dirty record is this old
	// CleanerBufferBytes bounds the memory of one compaction pass's offset map (Kafka's
	// broker-wide log.cleaner.dedupe.buffer.size); a larger dirty part is cleaned over several
	// passes.
	CleanerBufferBytes int64
}

// DefaultConfig returns Kafka's defaults.
func DefaultConfig() Config {
	return Config{
		SegmentBytes:       1 << 30,
		SegmentMs:          7 * 24 * 3600 * 1000,
		SegmentIndexBytes:  10 << 20,
		IndexIntervalBytes: 4096,
		RetentionBytes:     -1,
		RetentionMs:        7 * 24 * 3600 * 1000,
		FlushMessages:      1<<63 - 1,
		FlushMs:            1<<63 - 1,
		MaxMessageBytes:    1048588,
		PreallocateBytes:   8 << 20,

		DeleteRetentionMs:      24 * 3600 * 1000,
		MinCleanableDirtyRatio: 0.5,
		MaxCompactionLagMs:     math.MaxInt64,
		CleanerBufferBytes:     128 << 20,
	}
}

func (c *Config) now() int64 {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now().UnixMilli()
}

// normalized fills zero fields with defaults and clamps nonsense.
func (c Config) normalized() Config {
	d := DefaultConfig()
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = d.SegmentBytes
	}
	if c.SegmentBytes > 1<<31-1 {
		c.SegmentBytes = 1<<31 - 1 // positions are u32 in the index; Kafka caps at Int.MaxValue
	}
	if c.SegmentMs <= 0 {
		c.SegmentMs = d.SegmentMs
	}
	if c.SegmentIndexBytes < 16 {
		c.SegmentIndexBytes = d.SegmentIndexBytes
	}
	if c.IndexIntervalBytes <= 0 {
		c.IndexIntervalBytes = d.IndexIntervalBytes
	}
	if c.RetentionBytes == 0 {
		c.RetentionBytes = d.RetentionBytes
	}
	if c.RetentionMs == 0 {
		c.RetentionMs = d.RetentionMs
	}
	if c.FlushMessages <= 0 {
		c.FlushMessages = d.FlushMessages
	}
	if c.FlushMs <= 0 {
		c.FlushMs = d.FlushMs
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = d.MaxMessageBytes
	}
	if c.PreallocateBytes <= 0 {
		c.PreallocateBytes = d.PreallocateBytes
	}
	if c.DeleteRetentionMs < 0 {
		c.DeleteRetentionMs = d.DeleteRetentionMs
	}
	if math.IsNaN(c.MinCleanableDirtyRatio) || c.MinCleanableDirtyRatio < 0 {
		c.MinCleanableDirtyRatio = d.MinCleanableDirtyRatio
	}
	c.MinCleanableDirtyRatio = min(c.MinCleanableDirtyRatio, 1)
	c.MinCompactionLagMs = max(c.MinCompactionLagMs, 0)
	if c.MaxCompactionLagMs <= 0 {
		c.MaxCompactionLagMs = d.MaxCompactionLagMs
	}
	if c.CleanerBufferBytes <= 0 {
		c.CleanerBufferBytes = d.CleanerBufferBytes
	}
	return c
}
