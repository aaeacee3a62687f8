package coordinator

import (
	"fmt"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

// groupMetrics are the coordinator's Prometheus series:
//
//	spate_groups{state="Stable"}       groups by state (Empty, PreparingRebalance, …)
//	spate_group_members                members of all groups
//	spate_group_rebalances_total       rebalances completed (a generation with members)
//	spate_group_offsets                committed offsets held
//	spate_group_offset_commits_total   offsets committed
//	spate_group_offsets_expired_total  offsets removed by offsets.retention.minutes
type groupMetrics struct {
	byState    [numStates]atomic.Int64
	members    atomic.Int64
	offsets    atomic.Int64
	rebalances *metrics.Counter
	commits    *metrics.Counter
	expired    *metrics.Counter
	consumer   consumerMetrics
}

func newGroupMetrics(s *metrics.Set) *groupMetrics {
	m := &groupMetrics{
		rebalances: s.GetOrCreateCounter("spate_group_rebalances_total"),
		commits:    s.GetOrCreateCounter("spate_group_offset_commits_total"),
		expired:    s.GetOrCreateCounter("spate_group_offsets_expired_total"),
	}
	for st := State(0); st < Dead; st++ {
		st := st
		s.GetOrCreateGauge(fmt.Sprintf(`spate_groups{state=%q}`, st.String()), func() float64 { return float64(m.byState[st].Load()) })
	}
	s.GetOrCreateGauge("spate_group_members", func() float64 { return float64(m.members.Load()) })
	s.GetOrCreateGauge("spate_group_offsets", func() float64 { return float64(m.offsets.Load()) })
	m.registerConsumer(s)
	return m
}
