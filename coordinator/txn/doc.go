// Package txn is the transaction coordinator (KIP-98, with KIP-360 epoch bumps, KIP-447
// fencing, KIP-664 admin APIs and KIP-890 part 1 verification): Apache Kafka's
// TransactionCoordinator and TransactionStateManager are the reference, and their rules are
// quoted where they are applied.
//
// It owns the transactional ids of this node (with Config.PartitionOwnership, of the partitions
// of __transaction_state it leads) — each one's producer id and epoch, its transaction's
// state, partitions, timeout and start time — and their durable form: records in the internal
// topic __transaction_state, written through the broker's partition logs and read back on
// start (or when this broker becomes a partition's leader). It decides when a transaction's commit or abort markers are written and asks
// the broker to write them (Host.WriteMarkers), aborts transactions that outlive their timeout
// and forgets transactional ids left idle for transactional.id.expiration.ms.
//
// It knows nothing of sockets, request headers or the broker's partitions: the broker hands it
// decoded kmsg requests and gives it the Host interface to reach __transaction_state, to
// allocate producer ids and to write markers.
//
// # States
//
//	                 AddPartitionsToTxn                EndTxn(commit)
//	Empty ------------------------------> Ongoing -----------------> PrepareCommit
//	  ^  ^                                 |  |                          | markers written
//	  |  | InitProducerId                  |  | EndTxn(abort), timeout,  v
//	  |  +------ CompleteCommit <----------+--+-- InitProducerId     CompleteCommit
//	  |          CompleteAbort                |   (fence: epoch+1)
//	  |             ^                         v
//	  |             +----- markers written -- PrepareAbort
//	  +-- InitProducerId (from Empty, CompleteCommit, CompleteAbort: epoch+1)
//
// Dead: the id expired; its key has a tombstone and it has left the coordinator's map.
// PrepareEpochFence exists only as a name (Kafka keeps it in memory while it fences; here the
// fence is the PrepareAbort record with the bumped epoch).
//
// A Prepare* state is durable before any marker is written; the markers are then written
// (retried until every partition has one or the coordinator stops) and the Complete* state is
// recorded. Requests that would change a transaction in Prepare* get CONCURRENT_TRANSACTIONS.
// On start, a Prepare* transaction found in the log has its markers written again (the Host
// makes that harmless) and is completed; an Ongoing one keeps its start time, so its timeout
// clock resumes where it stopped.
//
// # Partitions served (Config.PartitionOwnership)
//
// On a single node (the default) every partition of __transaction_state is this node's: all
// are loaded at start or by the first Ensure, and markers carry coordinator epoch 0. In a
// cluster, with PartitionOwnership, a broker serves only the transactional ids of the
// partitions it leads (ownership.go), as the broker reports them: OnElection(partition,
// leaderEpoch) loads that partition's ids on a goroutine (COORDINATOR_LOAD_IN_PROGRESS
// meanwhile), then completes its Prepare* transactions and resumes its timeout clocks as a
// start does, its markers carrying leaderEpoch as coordinator epoch (so that partition leaders
// can refuse a deposed coordinator's); OnResignation(partition, leaderEpoch) forgets them,
// stopping their marker writing and completion without any Complete* record (the next leader
// completes them from the log). A request for an id of any other partition answers
// NOT_COORDINATOR. Ensure then only makes sure the topic exists. Stale epochs are ignored; Owns
// tells which partitions are served.
//
// # Records of __transaction_state (Kafka's TransactionLog schemas, kmsg's codecs)
//
// A transactional id lives in partition abs(javaHashCode(id)) % partitions. Every state change
// is one record in one uncompressed batch (producer id -1); a null value is a tombstone.
//
//	key (TxnMetadataKey v0)          value (TxnMetadataValue v0; v1 is read too)
//	version         int16 = 0        version               int16 = 0
//	transactional   string           producer_id           int64
//	  id                             producer_epoch        int16
//	                                 timeout_ms            int32
//	                                 state                 int8   0 Empty 1 Ongoing
//	                                                              2 PrepareCommit 3 PrepareAbort
//	                                                              4 CompleteCommit 5 CompleteAbort
//	                                 topics                array, null when Empty:
//	                                   topic               string
//	                                   partitions          []int32
//	                                 last_update_timestamp int64
//	                                 start_timestamp       int64  -1 when no transaction began
//
// Kafka's v0 value has no previous producer id or epoch, so a KIP-360 retry of an
// InitProducerId whose answer was lost is recognised only until the coordinator restarts, as
// in Kafka.
//
// # Locks
//
// Lock order: txn.mu, then Coordinator.mu; Coordinator.lifeMu (Close against new work) is taken
// before Coordinator.mu and never with txn.mu. txn.mu serializes the changes of one
// transactional id and is held across the append of its record (so the log's order is the
// order of the changes), never across WriteMarkers. Coordinator.mu (a RWMutex) guards the map
// of ids and every txn's fields: a change holds txn.mu and then Coordinator.mu for writing
// while it installs the new fields, so readers need only one of the two. Coordinator.mu is
// never held across a Host call: the broker calls VerifyPartition while it holds a partition's
// lock, and WriteMarkers takes partition locks.
package txn
