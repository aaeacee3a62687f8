package txn

// VerifyPartition reports whether a transactional batch may be appended to tp (KIP-890 part
// 1, transaction.partition.verification.enable): 0 when tp is in the ongoing transaction of
// transactionalID for producerID at epoch. Otherwise it returns the coordinator's answer to a
// VerifyOnly AddPartitionsToTxn as AddPartitionsToTxnManager hands it to the produce path:
//   - INVALID_PRODUCER_ID_MAPPING: unknown id, or another producer id;
//   - INVALID_PRODUCER_EPOCH: another epoch (PRODUCER_FENCED, translated for producers);
//   - CONCURRENT_TRANSACTIONS: the transaction is completing;
//   - INVALID_TXN_STATE: tp was not added, or no transaction is running;
//   - NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS: the state topic is not loaded;
//   - INVALID_REQUEST: an empty id.
//
// A produce response carries ProduceErrorCode of it. It takes the coordinator's read lock for
// a map lookup and allocates nothing; it never waits for an append or a marker, so the broker
// may call it holding a partition's lock.
func (c *Coordinator) VerifyPartition(transactionalID string, producerID int64, epoch int16, tp TopicPartition) int16 {
	if transactionalID == "" {
		return errInvalidRequest
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if code := c.statusLocked(transactionalID); code != 0 {
		return code
	}
	t := c.txns[transactionalID]
	if t == nil {
		return errInvalidProducerIDMapping
	}
	if code := t.verdictLocked(producerID, epoch); code != 0 {
		if code == errProducerFenced {
			return errInvalidProducerEpoch
		}
		return code
	}
	if _, ok := t.partitions[tp]; !ok {
		return errInvalidTxnState
	}
	return 0
}

// verifyPartitions is TransactionCoordinator.handleVerifyPartitionsInTransaction: one code per
// partition into codes. Partitions are in the transaction from the record that added them to
// the one that completed it, so no state is checked beyond Prepare*.
func (c *Coordinator) verifyPartitions(id string, pid int64, epoch int16, tps []TopicPartition, codes []int16) {
	code := errInvalidRequest
	if id != "" {
		c.mu.RLock()
		defer c.mu.RUnlock()
		code = c.statusLocked(id)
	}
	if code == 0 {
		if t := c.txns[id]; t == nil {
			code = errInvalidProducerIDMapping
		} else if code = t.verdictLocked(pid, epoch); code == 0 {
			for i, tp := range tps {
				if _, ok := t.partitions[tp]; !ok {
					codes[i] = errInvalidTxnState
				}
			}
			return
		}
	}
	for i := range codes {
		codes[i] = code
	}
}

// verdictLocked checks a producer against the id's transaction for adding or verifying
// partitions. Caller holds c.mu or t.mu.
func (t *txn) verdictLocked(pid int64, epoch int16) int16 {
	if code := t.producerLocked(pid, epoch); code != 0 {
		return code
	}
	if t.state.preparing() {
		return errConcurrentTransactions
	}
	return 0
}

// producerLocked checks that pid and epoch are the id's producer: INVALID_PRODUCER_ID_MAPPING
// for another producer id (or an id whose first InitProducerId is not stored yet),
// PRODUCER_FENCED for another epoch. Caller holds c.mu or t.mu.
func (t *txn) producerLocked(pid int64, epoch int16) int16 {
	switch {
	case t.producerID != pid || t.producerEpoch == noProducerEpoch:
		return errInvalidProducerIDMapping
	case t.producerEpoch != epoch:
		return errProducerFenced
	}
	return 0
}
