package txn

// Config holds the coordinator's settings, named after Kafka's broker settings.
type Config struct {
	TransactionMaxTimeoutMs int64 // transaction.max.timeout.ms
	StatePartitions         int32 // transaction.state.log.num.partitions
	// TransactionalIDExpirationMs is how long an id may stay idle (no transaction running)
	// before it is forgotten (transactional.id.expiration.ms).
	TransactionalIDExpirationMs int64
	// AbortTimedOutTransactionsIntervalMs is how often Ongoing transactions are checked
	// against their timeout (transaction.abort.timed.out.transaction.cleanup.interval.ms).
	AbortTimedOutTransactionsIntervalMs int64
	// RemoveExpiredTransactionalIDsIntervalMs is how often idle ids are looked for
	// (transaction.remove.expired.transaction.cleanup.interval.ms).
	RemoveExpiredTransactionalIDsIntervalMs int64
	LoadBufferBytes                         int64 // transaction.state.log.load.buffer.size

	// PartitionOwnership makes the coordinator serve only the transactional ids of the
	// partitions of __transaction_state this broker leads, as the broker reports them with
	// OnElection and OnResignation (a cluster). false: this node owns every partition and loads
	// them all at start or on Ensure (a single node).
	PartitionOwnership bool
}

// DefaultConfig returns Kafka's defaults.
func DefaultConfig() Config {
	return Config{
		TransactionMaxTimeoutMs:                 900000,
		StatePartitions:                         50,
		TransactionalIDExpirationMs:             604800000,
		AbortTimedOutTransactionsIntervalMs:     10000,
		RemoveExpiredTransactionalIDsIntervalMs: 3600000,
		LoadBufferBytes:                         5 << 20,
	}
}

// normalized fills unset fields with defaults.
func (c Config) normalized() Config {
	d := DefaultConfig()
	if c.TransactionMaxTimeoutMs <= 0 {
		c.TransactionMaxTimeoutMs = d.TransactionMaxTimeoutMs
	}
	if c.StatePartitions <= 0 {
		c.StatePartitions = d.StatePartitions
	}
	if c.TransactionalIDExpirationMs <= 0 {
		c.TransactionalIDExpirationMs = d.TransactionalIDExpirationMs
	}
	if c.AbortTimedOutTransactionsIntervalMs <= 0 {
		c.AbortTimedOutTransactionsIntervalMs = d.AbortTimedOutTransactionsIntervalMs
	}
	if c.RemoveExpiredTransactionalIDsIntervalMs <= 0 {
		c.RemoveExpiredTransactionalIDsIntervalMs = d.RemoveExpiredTransactionalIDsIntervalMs
	}
	if c.LoadBufferBytes <= 0 {
		c.LoadBufferBytes = d.LoadBufferBytes
	}
	return c
}
