// Package coordinator is the group coordinator of the classic consumer-group protocol
// (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups,
// ListGroups, DeleteGroups, OffsetDelete), with Kafka's state machine, timeouts and error codes:
// the Java GroupCoordinator and GroupMetadataManager are the reference, and their rules are
// quoted where they are applied. Consumer groups of the next-generation protocol (KIP-848:
// ConsumerGroupHeartbeat, ConsumerGroupDescribe, assignment computed here) are described in
// consumer_group.go; the online migration of a group between the two protocols (KIP-848,
// group.consumer.migration.policy) in migration.go.
//
// It owns the groups, their members and committed offsets, and their durable form: records in
// the internal topic __consumer_offsets, written as record batches through the partition logs
// of the broker it runs in (so they replicate with the cluster) and read back on start, or
// when this broker becomes the leader of a partition.
// It knows nothing of sockets, request headers or the topic manager: the broker hands it
// decoded kmsg requests and a reply function, and gives it the Host interface to reach the
// offsets topic's logs.
//
// # Groups and their states
//
//	           +--------------------------------------------------+
//	           v                                                  |
//	Empty --> PreparingRebalance --> CompletingRebalance --> Stable
//	  ^         |   ^                        |                    |
//	  +---------+   +------------------------+--------------------+
//	(all left)        (a member joins, leaves, fails or changes its metadata)
//
// Dead: deleted (DeleteGroups, or Empty with no offsets after offsets expire); removed from
// the coordinator's map under the group's lock, so whoever finds a Dead group looks it up again.
//
// A JoinGroup is parked (its reply function kept in the member) until every known member has
// rejoined or the rebalance timeout fires; an Empty group waits group.initial.rebalance.delay.ms
// first, extended while new members keep arriving (Kafka's InitialDelayedJoin). Timers run on
// their own goroutines and take the group's lock; nothing here blocks an event loop longer
// than an append to a log's mapping.
//
// # Records of __consumer_offsets (Kafka's schemas, kmsg's codecs)
//
// A group lives in partition abs(javaHashCode(group)) % partitions. The key's version says
// what the record is; a null value is a tombstone (the key is deleted).
//
//	key version  key                              value
//	0, 1         OffsetCommitKey                  OffsetCommitValue v3 (v1 when an expire
//	             group | topic | partition i32    timestamp was given, OffsetCommit v2-v4):
//	                                              offset i64 | leader_epoch i32 | metadata |
//	                                              commit_timestamp i64 [| expire_timestamp i64]
//	2            GroupMetadataKey                 GroupMetadataValue v3: protocol_type |
//	             group                            generation i32 | protocol | leader |
//	                                              current_state_timestamp i64 | members[
//	                                              member_id | instance_id | client_id |
//	                                              client_host | rebalance_timeout i32 |
//	                                              session_timeout i32 | subscription |
//	                                              assignment ]
//	3, 5-8       KIP-848 consumer group records (consumer_records.go)
//	other        (share groups, …)                skipped on load
//
// Every write is one uncompressed batch (producer id -1), appended under the group's lock so
// that the log's order is the order in which the in-memory state changed; an OffsetCommit is
// answered after its batch is in the log. Loading replays each partition from its log start.
//
// # Partitions served (Config.PartitionOwnership)
//
// On a single node (the default) every partition of __consumer_offsets is this node's: all are
// loaded at start or by the first Ensure. In a cluster, with PartitionOwnership, a broker
// serves only the groups of the partitions it leads (ownership.go), as the broker reports
// them: OnElection(partition, leaderEpoch) loads that partition's groups on a goroutine
// (COORDINATOR_LOAD_IN_PROGRESS meanwhile), OnResignation(partition, leaderEpoch) unloads them
// (parked JoinGroup and SyncGroup answered NOT_COORDINATOR, timers stopped, nothing written),
// and a request for a group of any other partition answers NOT_COORDINATOR. Ensure then only
// makes sure the topic exists. Stale epochs are ignored; Owns tells which partitions are
// served.
//
// Lock order: group.mu, then Coordinator.mu. Replies are queued while group.mu is held and sent
// after it is released (group.unlock), so a slow connection never holds a group.
package coordinator
