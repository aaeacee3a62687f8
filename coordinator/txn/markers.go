package txn

// finish completes a transaction that m shows in PrepareCommit or PrepareAbort: it writes the
// markers to every partition of the transaction (TransactionMarkerChannelManager), then
// records CompleteCommit or CompleteAbort. It gives up, leaving the Prepare* record for the
// next start to complete, only when the coordinator stops. The caller holds no lock and has
// entered the coordinator (or is its load), and is the only one completing this transaction:
// nothing else moves a transaction out of Prepare*.
func (c *Coordinator) finish(t *txn, m meta) bool {
	commit := m.state == PrepareCommit
	if !c.writeMarkers(t, m.producerID, m.producerEpoch, commit, sortedPartitions(m.partitions)) {
		return false
	}
	for backoff := retryBackoffMin; ; backoff = min(2*backoff, retryBackoffMax) {
		if done, ok := c.complete(t, m); ok {
			return done
		}
		if !c.sleep(t.stop, backoff) {
			return false
		}
	}
}

// complete records the Complete* state after the markers of m are written
// (TransactionMetadata.prepareComplete: the partitions are dropped, the start time kept).
// ok is false when the append failed and should be retried.
func (c *Coordinator) complete(t *txn, m meta) (done, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.closed.Load() || t.gone.Load() {
		return false, true // the next start, or the partition's next leader, completes it
	}
	if t.state != m.state || t.producerID != m.producerID || t.producerEpoch != m.producerEpoch {
		panic("BUG: transaction " + t.id + " left " + m.state.String() + " while its markers were written")
	}
	next := t.meta
	next.state, next.partitions, next.updateMs = CompleteAbort, nil, c.now()
	if m.state == PrepareCommit {
		next.state = CompleteCommit
	}
	if code := c.persist(t, &next); code != 0 {
		return false, false
	}
	c.install(t, next)
	if next.state == CompleteCommit {
		c.metrics.committed.Inc()
	} else {
		c.metrics.aborted.Inc()
	}
	c.log.Debug("transaction completed", "transactional_id", t.id, "state", next.state.String(), "producer_id", next.producerID, "epoch", next.producerEpoch)
	return true, true
}

// writeMarkers asks the host to write the markers of t to parts, retrying the partitions that
// failed with a retriable code, with backoff, until none is left or the coordinator stops
// (TransactionMarkerRequestCompletionHandler), or t is unloaded. It returns false when it
// stopped.
func (c *Coordinator) writeMarkers(t *txn, pid int64, epoch int16, commit bool, parts []TopicPartition) bool {
	id := t.id
	backoff := retryBackoffMin
	for len(parts) > 0 {
		if t.gone.Load() {
			return false
		}
		codes := c.host.WriteMarkers(pid, epoch, commit, t.coordEpoch, parts)
		if len(codes) != len(parts) {
			panic("BUG: WriteMarkers returned a code count other than the partition count")
		}
		var retry []TopicPartition
		for i, code := range codes {
			switch code {
			case 0, errUnknownTopicOrPartition:
				// Written, or the partition is gone.
			case errUnsupportedForMessageFormat, errUnsupportedVersion:
				c.log.Warn("marker skipped: partition cannot take it", "transactional_id", id, "topic", parts[i].Topic, "partition", parts[i].Partition, "code", code)
			case errInvalidProducerEpoch, errTransactionCoordinatorFenced:
				// The partition has seen a newer epoch of this producer: nothing to end there.
				c.log.Warn("marker refused: newer producer epoch", "transactional_id", id, "topic", parts[i].Topic, "partition", parts[i].Partition, "code", code)
			default:
				retry = append(retry, parts[i])
			}
		}
		if len(retry) == 0 {
			return true
		}
		c.metrics.markerRetries.Add(len(retry))
		c.log.Warn("retrying transaction markers", "transactional_id", id, "producer_id", pid, "epoch", epoch, "commit", commit, "partitions", len(retry), "backoff", backoff)
		if !c.sleep(t.stop, backoff) {
			return false
		}
		backoff = min(2*backoff, retryBackoffMax)
		parts = retry
	}
	return true
}
