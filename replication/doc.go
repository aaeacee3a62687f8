// Package replication is Kafka-style pull replication between brokers, as a library the broker
// wires in. It owns:
//
//   - EpochCache (epoch_cache.go): a partition's leader epoch history, Kafka's
//     LeaderEpochFileCache, kept in the partition folder's leader-epoch-checkpoint file.
//   - LeaderState (leader.go): the leader's bookkeeping of one partition — each follower's
//     log end offset and last caught-up time, the high watermark, and the ISR shrink and
//     expand candidates, as Kafka's Partition and Replica classes keep them.
//   - Fetcher (fetcher.go: API and state; fetcher_conn.go: the connection, requests out and
//     responses in; fetcher_apply.go: appends and truncations): the follower side — one per
//     source broker, a connection that carries pipelined Fetch v12 requests for every
//     partition followed from that leader, appends what comes back with the leader's offsets,
//     and truncates divergent tails (OffsetForLeaderEpoch, KIP-101/279; diverging_epoch,
//     KIP-320) and out-of-range logs.
//
// It must not know the broker, the controller or the network server: the broker owns the
// partitions, accepts replica fetches, asks the controller to change the ISR and tells this
// package who leads what. It imports logstore (the logs) and kmsg (the cold-path requests);
// the Fetch request and response, the hot path, are encoded and decoded by hand (wire.go,
// fetch_codec.go) so that steady-state replication allocates nothing per fetch.
//
// Lock order: Fetcher.mu, then EpochCache.mu. A partition's busy lock (held while the fetcher
// writes its log or epoch cache) is never taken while Fetcher.mu is held, and is taken before
// the log's and the epoch cache's own locks. LeaderState.mu is a leaf.
//
// Non-obvious invariants:
//   - A partition is in at most one in-flight request, so the fetch offset of a request is
//     exactly the local log end offset when its response is applied; a response whose
//     partition no longer matches (the log moved meanwhile) is dropped, never appended.
//   - An epoch is assigned in the cache before the batches that carry it are appended (as
//     Kafka's UnifiedLog.append), so a crash leaves at most an entry past the log end,
//     which the owner removes at start-up with TruncateFromEnd(log end offset).
//   - The follower's epoch cache is written only from appended batches (Assign with each
//     batch's partition leader epoch), so its latest epoch is the epoch of the last fetched
//     batch: the last_fetched_epoch of KIP-320.
package replication
