package txn

import (
	"fmt"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

// txnMetrics are the coordinator's Prometheus series:
//
//	spate_txn_transactions{state="Ongoing"}  transactional ids by state (Empty … CompleteAbort)
//	spate_txn_started_total                   transactions begun (first AddPartitionsToTxn)
//	spate_txn_committed_total                 transactions committed (markers written)
//	spate_txn_aborted_total                   transactions aborted (markers written)
//	spate_txn_timed_out_total                 transactions aborted by transaction.timeout.ms
//	spate_txn_ids_expired_total               transactional ids removed by
//	                                          transactional.id.expiration.ms
//	spate_txn_marker_retries_total            partitions whose marker write was retried
type txnMetrics struct {
	byState       [numStates]atomic.Int64
	started       *metrics.Counter
	committed     *metrics.Counter
	aborted       *metrics.Counter
	timedOut      *metrics.Counter
	expired       *metrics.Counter
	markerRetries *metrics.Counter
}

func newTxnMetrics(s *metrics.Set) *txnMetrics {
	m := &txnMetrics{
		started:       s.GetOrCreateCounter("spate_txn_started_total"),
		committed:     s.GetOrCreateCounter("spate_txn_committed_total"),
		aborted:       s.GetOrCreateCounter("spate_txn_aborted_total"),
		timedOut:      s.GetOrCreateCounter("spate_txn_timed_out_total"),
		expired:       s.GetOrCreateCounter("spate_txn_ids_expired_total"),
		markerRetries: s.GetOrCreateCounter("spate_txn_marker_retries_total"),
	}
	for st := Empty; st < Dead; st++ {
		s.GetOrCreateGauge(fmt.Sprintf(`spate_txn_transactions{state=%q}`, st.String()), func() float64 { return float64(m.byState[st].Load()) })
	}
	return m
}
