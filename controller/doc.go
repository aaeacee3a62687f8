// Package controller is the cluster metadata quorum: a replicated log of metadata records on
// hashicorp/raft, the state machine that folds it into an immutable Image on every node, and
// the leader-side operations that validate requests and write records.
//
// It owns: broker registrations and sessions (heartbeats, fencing, controlled shutdown),
// topics and their partitions' replicas, ISR, leaders and epochs, replica placement, leader
// elections, topic and broker config overrides, and producer-id blocks. It knows nothing of
// the Kafka wire protocol, of partition logs or of the network beyond Raft's own transport;
// it imports no other Spate package.
//
// # Roles
//
// Controllers are Raft voters; broker-only nodes are non-voters that follow the log
// read-only; a node can be both (one Controller serves either way). The node listed first in
// Config.BootstrapVoters bootstraps the quorum once, when it has no Raft state; voters and
// non-voters join later through AddVoter/AddNonvoter on the leader. Raft server ids are
// decimal node ids.
//
// # Files
//
// records.go (record encoding), fsm.go (apply, snapshot, restore), image.go (Image),
// snapshot.go (Image encoding), boltstore.go (Raft log and stable store), controller.go
// (lifecycle, membership, leader sessions), brokers.go, topics.go, partitions.go
// (leader-side operations), placement.go (replica placement), errors.go (Kafka codes).
//
// On disk, Config.Dir (by Kafka's layout <data-dir>/__cluster_metadata-0) holds raft.db
// (bbolt: Raft log and stable store) and snapshots/ (raft.FileSnapshotStore, 2 kept).
//
// # Using it from the broker
//
//   - Forwarding: every leader-side operation returns a *NotLeaderError (errors.Is
//     ErrNotLeader) on a node that is not the ready leader, naming the leader when known.
//     The broker forwards the request to that node, or answers NOT_CONTROLLER
//     (ErrorCode(err)). An error after the entry was proposed (leadership lost) leaves the
//     outcome unknown, as a Kafka request timeout does.
//   - Registration: on start, RegisterBroker with a fresh random IncarnationID; keep the
//     returned broker epoch. DUPLICATE_BROKER_REGISTRATION means the previous incarnation's
//     session is still alive: retry after a backoff.
//   - Heartbeats: every SessionTimeout/3 or so, Heartbeat(id, epoch, false). The first one
//     unfences the broker. STALE_BROKER_EPOCH or BROKER_ID_NOT_REGISTERED: register again.
//     To stop, heartbeat with wantShutdown until ShouldShutDown (or call ControlledShutdown),
//     then stop.
//   - Metadata: Subscribe, and on each notification load Image() and diff it with the last
//     one handled: for each partition with this broker among its replicas, become leader
//     (Leader == self, at LeaderEpoch) or follower of Leader (truncating on a new epoch),
//     stop serving partitions it no longer hosts, delete the logs of deleted topics, apply
//     configs. Readers never lock; an Image never changes.
//   - Admin requests (CreateTopics, DeleteTopics, CreatePartitions, AlterConfigs,
//     ElectLeaders) map one to one. After a forwarded write, wait for the local Image
//     (WaitForImage) before answering, so the client's next Metadata request sees it.
//   - ISR: a partition leader calls AlterPartition with its leader epoch and the partition
//     epoch it knows, and adopts the returned state; FENCED_LEADER_EPOCH or
//     INVALID_UPDATE_VERSION mean its Image is behind: wait for a newer one.
//   - Producer ids: AllocateProducerIDs hands out blocks of 1000 that never overlap.
//
// # Invariants
//
//   - Every node that applied the same entries holds a DeepEqual Image (Apply is
//     deterministic); a snapshot restore yields the Image that was snapshotted.
//   - Leader-side operations run one at a time under Controller.opMu and validate against
//     an Image that holds every committed entry (a new leader applies all earlier entries,
//     with a Raft barrier, before it serves).
//   - One operation is one Raft entry; an entry applies entirely or not at all.
//   - A fenced broker leads no partition; a leader is elected only from the ISR among
//     unfenced brokers unless unclean.leader.election.enable allows otherwise; the ISR is
//     never empty (fencing keeps the last member).
//   - PartitionEpoch grows by one with every partition change, LeaderEpoch with every leader
//     change; a broker's epoch is the Raft index of its registration.
//   - Producer-id blocks never overlap, across leader changes too.
//   - Heartbeats are never logged; on taking over, a leader treats every registered broker
//     as just heard from.
//
// Lock order: Controller.opMu → Controller.mu → fsm.subMu.
package controller
