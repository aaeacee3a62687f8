package coordinator

import (
	"fmt"
	"strings"
	"time"
)

// Config holds the coordinator's settings, named after Kafka's broker settings.
type Config struct {
	MinSessionTimeout     time.Duration // group.min.session.timeout.ms
	MaxSessionTimeout     time.Duration // group.max.session.timeout.ms
	InitialRebalanceDelay time.Duration // group.initial.rebalance.delay.ms
	MaxSize               int           // group.max.size
	// NewMemberJoinTimeout bounds how long a new member's JoinGroup may wait in a rebalance
	// before the member is dropped (Kafka's fixed 5 minutes).
	NewMemberJoinTimeout time.Duration

	// Consumer groups (KIP-848).
	ConsumerHeartbeatInterval time.Duration // group.consumer.heartbeat.interval.ms
	ConsumerSessionTimeout    time.Duration // group.consumer.session.timeout.ms
	ConsumerMaxSize           int           // group.consumer.max.size
	// MigrationPolicy is group.consumer.migration.policy (KIP-848 online migration,
	// migration.go): whether a classic group with members becomes a consumer group when a
	// consumer-protocol member joins (upgrade), and a consumer group whose consumer-protocol
	// members are gone becomes a classic group again (downgrade). The zero value is Kafka 4's
	// default, bidirectional.
	MigrationPolicy MigrationPolicy

	OffsetsTopicPartitions        int32         // offsets.topic.num.partitions
	OffsetsTopicSegmentBytes      int64         // offsets.topic.segment.bytes
	OffsetsRetention              time.Duration // offsets.retention.minutes
	OffsetsRetentionCheckInterval time.Duration // offsets.retention.check.interval.ms
	OffsetMetadataMaxBytes        int           // offset.metadata.max.bytes
	OffsetsLoadBufferBytes        int64         // offsets.load.buffer.size

	// PartitionOwnership makes the coordinator serve only the groups of the partitions of
	// __consumer_offsets this broker leads, as the broker reports them with OnElection and
	// OnResignation (a cluster). false: this node owns every partition and loads them all at
	// start or on Ensure (a single node).
	PartitionOwnership bool
}

// MigrationPolicy is a value of group.consumer.migration.policy (Kafka's
// ConsumerGroupMigrationPolicy). The zero value is bidirectional, Kafka 4's default.
type MigrationPolicy int8

// The migration policies.
const (
	MigrationBidirectional MigrationPolicy = iota // upgrade and downgrade
	MigrationUpgrade                              // classic to consumer only
	MigrationDowngrade                            // consumer to classic only
	MigrationDisabled                             // neither; and no new classic member joins a consumer group
)

var migrationPolicyNames = [...]string{"bidirectional", "upgrade", "downgrade", "disabled"}

func (p MigrationPolicy) String() string {
	if p >= 0 && int(p) < len(migrationPolicyNames) {
		return migrationPolicyNames[p]
	}
	return fmt.Sprintf("MigrationPolicy(%d)", int8(p))
}

// ParseMigrationPolicy reads a policy by its Kafka name, in any case.
func ParseMigrationPolicy(s string) (MigrationPolicy, error) {
	for i, n := range migrationPolicyNames {
		if strings.EqualFold(s, n) {
			return MigrationPolicy(i), nil
		}
	}
	return 0, fmt.Errorf("group.consumer.migration.policy %q: want one of %s", s, strings.Join(migrationPolicyNames[:], ", "))
}

// Set implements flag.Value.
func (p *MigrationPolicy) Set(s string) error {
	v, err := ParseMigrationPolicy(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

func (p MigrationPolicy) upgradeEnabled() bool {
	return p == MigrationBidirectional || p == MigrationUpgrade
}

func (p MigrationPolicy) downgradeEnabled() bool {
	return p == MigrationBidirectional || p == MigrationDowngrade
}

// DefaultConfig returns Kafka's defaults.
func DefaultConfig() Config {
	return Config{
		MinSessionTimeout:             6 * time.Second,
		MaxSessionTimeout:             30 * time.Minute,
		InitialRebalanceDelay:         3 * time.Second,
		MaxSize:                       1<<31 - 1,
		NewMemberJoinTimeout:          5 * time.Minute,
		ConsumerHeartbeatInterval:     5 * time.Second,
		ConsumerSessionTimeout:        45 * time.Second,
		ConsumerMaxSize:               1<<31 - 1,
		OffsetsTopicPartitions:        50,
		OffsetsTopicSegmentBytes:      100 << 20,
		OffsetsRetention:              7 * 24 * time.Hour,
		OffsetsRetentionCheckInterval: 10 * time.Minute,
		OffsetMetadataMaxBytes:        4096,
		OffsetsLoadBufferBytes:        5 << 20,
	}
}

// normalized fills unset fields with defaults.
func (c Config) normalized() Config {
	d := DefaultConfig()
	if c.MinSessionTimeout <= 0 {
		c.MinSessionTimeout = d.MinSessionTimeout
	}
	if c.MaxSessionTimeout <= 0 {
		c.MaxSessionTimeout = d.MaxSessionTimeout
	}
	if c.InitialRebalanceDelay < 0 {
		c.InitialRebalanceDelay = 0
	}
	if c.MaxSize <= 0 {
		c.MaxSize = d.MaxSize
	}
	if c.NewMemberJoinTimeout <= 0 {
		c.NewMemberJoinTimeout = d.NewMemberJoinTimeout
	}
	if c.ConsumerHeartbeatInterval <= 0 {
		c.ConsumerHeartbeatInterval = d.ConsumerHeartbeatInterval
	}
	if c.ConsumerSessionTimeout <= 0 {
		c.ConsumerSessionTimeout = d.ConsumerSessionTimeout
	}
	if c.ConsumerMaxSize <= 0 {
		c.ConsumerMaxSize = d.ConsumerMaxSize
	}
	if c.OffsetsTopicPartitions <= 0 {
		c.OffsetsTopicPartitions = d.OffsetsTopicPartitions
	}
	if c.OffsetsTopicSegmentBytes <= 0 {
		c.OffsetsTopicSegmentBytes = d.OffsetsTopicSegmentBytes
	}
	if c.OffsetsRetention <= 0 {
		c.OffsetsRetention = d.OffsetsRetention
	}
	if c.OffsetsRetentionCheckInterval <= 0 {
		c.OffsetsRetentionCheckInterval = d.OffsetsRetentionCheckInterval
	}
	if c.OffsetMetadataMaxBytes <= 0 {
		c.OffsetMetadataMaxBytes = d.OffsetMetadataMaxBytes
	}
	if c.OffsetsLoadBufferBytes <= 0 {
		c.OffsetsLoadBufferBytes = d.OffsetsLoadBufferBytes
	}
	if c.MigrationPolicy < 0 || int(c.MigrationPolicy) >= len(migrationPolicyNames) {
		c.MigrationPolicy = d.MigrationPolicy
	}
	return c
}
