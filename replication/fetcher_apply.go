package replication

// Applying the leader's answers to a followed partition — appends, truncations and phase
// changes — in the reader goroutine, under the partition's busy lock and off Fetcher.mu. What
// the answer decides for the partition's state goes into its outcome, applied on release.

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/logstore"
)

func (f *Fetcher) handleFetch(s *slot, frame []byte) error {
	if err := f.resp.decode(frame); err != nil {
		return err
	}
	if code := f.resp.errorCode; code != 0 {
		for _, ps := range s.parts {
			ps.out = outcome{seen: true, delay: true, errSet: true, errCode: code}
		}
		f.log.Warn("replication: fetch failed", "err", kerr.ErrorForCode(code))
		return nil
	}
	f.resolved = f.resolved[:0]
	f.mu.Lock()
	for ti := range f.resp.topics {
		t := &f.resp.topics[ti]
		for pi := range t.parts {
			f.resolved = append(f.resolved, f.resolveLocked(s, t.name, t.parts[pi].partition))
		}
	}
	f.mu.Unlock()
	k := 0
	for ti := range f.resp.topics {
		t := &f.resp.topics[ti]
		for pi := range t.parts {
			if ps := f.resolved[k]; ps != nil {
				f.applyFetch(ps, &t.parts[pi])
				ps.out.seen = true
			}
			f.resolved[k] = nil
			k++
		}
	}
	return nil
}

// applyFetch applies one partition of a fetch response.
func (f *Fetcher) applyFetch(ps *partState, p *fetchRespPartition) {
	ps.busy.Lock()
	defer ps.busy.Unlock()
	if ps.removed.Load() {
		return
	}
	switch code := p.errorCode; code {
	case 0:
		f.applyFetchData(ps, p)
	case kerr.OffsetOutOfRange.Code:
		ps.out = outcome{phase: PhaseListLatest, errSet: true, errCode: code}
		f.log.Info("replication: fetch offset out of range; asking the leader", "partition", ps.tp, "offset", ps.sentOffset)
	default:
		f.partitionError(ps, code, "fetch")
	}
}

// partitionError records an error answered for a partition: FENCED_LEADER_EPOCH pauses it,
// anything else backs off and retries.
func (f *Fetcher) partitionError(ps *partState, code int16, what string) {
	ps.out = outcome{delay: true, errSet: true, errCode: code}
	if code == kerr.FencedLeaderEpoch.Code {
		ps.out.phase = PhasePaused
		f.log.Warn("replication: fenced by the leader; paused until new metadata", "request", what,
			"partition", ps.tp, "leaderEpoch", ps.r.LeaderEpoch)
		return
	}
	f.log.Debug("replication: partition error; retrying", "request", what, "partition", ps.tp, "err", kerr.ErrorForCode(code))
}

func (f *Fetcher) applyFetchData(ps *partState, p *fetchRespPartition) {
	l := ps.r.Log
	leo := l.LogEndOffset()
	if leo != ps.sentOffset {
		return // the log moved since the request was built: fetch again
	}
	ps.out = outcome{errSet: true, hot: 1}
	var err error
	if p.divergingEpoch.Epoch >= 0 {
		off, _ := truncationOffset(ps.r.Epochs, leo, leo, p.divergingEpoch)
		if err = truncateLog(ps, off); err == nil && off < leo {
			f.log.Info("replication: truncated a diverging tail (KIP-320)", "partition", ps.tp,
				"from", leo, "to", l.LogEndOffset(), "divergingEpoch", p.divergingEpoch.Epoch, "divergingEndOffset", p.divergingEpoch.EndOffset)
		}
	} else {
		var n int64
		if n, err = f.appendRecords(ps, p.records); n > 0 {
			ps.out.moveToBack = true
		} else {
			ps.out.hot = -1
		}
	}
	if err != nil {
		ps.out = outcome{delay: true, errSet: true, errCode: logstore.CodeOf(err)}
		f.log.Warn("replication: applying fetched data failed", "partition", ps.tp, "err", err)
		return
	}
	if ps.r.OnFetched != nil {
		f.cbs = append(f.cbs, fetched{fn: ps.r.OnFetched, hw: p.highWatermark, lso: p.logStartOffset})
	}
}

// appendRecords appends the whole batches of recs that are at or past the log end offset,
// assigning each new leader epoch in the epoch cache first. It returns the records appended.
func (f *Fetcher) appendRecords(ps *partState, recs []byte) (int64, error) {
	l, c := ps.r.Log, ps.r.Epochs
	recs = wholeBatches(recs)
	leo := l.LogEndOffset()
	var h logstore.BatchHeader
	for len(recs) >= logstore.BatchHeaderSize {
		logstore.ParseBatchHeader(recs, &h)
		if h.LastOffset() >= leo || h.Size() < logstore.BatchHeaderSize || h.Size() > len(recs) {
			break
		}
		recs = recs[h.Size():] // already here
	}
	if len(recs) == 0 {
		return 0, nil
	}
	if len(recs) >= logstore.BatchHeaderSize && h.BaseOffset < leo && h.LastOffset() >= leo {
		// The leader's batch holds the fetch offset inside it (its log start is not batch
		// aligned). An empty log restarts at the batch, as Kafka's follower does.
		if err := logstore.CheckBatch(recs, 0, &h); err != nil {
			return 0, err
		}
		if l.LogStartOffset() != leo {
			return 0, fmt.Errorf("leader batch [%d, %d] straddles the log end offset %d", h.BaseOffset, h.LastOffset(), leo)
		}
		if err := l.TruncateFullyAndStartAt(h.BaseOffset); err != nil {
			return 0, err
		}
		if err := c.Clear(); err != nil {
			return 0, err
		}
	}
	for b := recs; len(b) >= logstore.BatchHeaderSize; {
		logstore.ParseBatchHeader(b, &h)
		if h.Size() < logstore.BatchHeaderSize || h.Size() > len(b) {
			break // corrupt: the append's own check rejects it
		}
		if h.PartitionLeaderEpoch >= 0 {
			if err := c.Assign(h.PartitionLeaderEpoch, h.BaseOffset); err != nil {
				return 0, err
			}
		}
		b = b[h.Size():]
	}
	if err := l.AppendAsFollower(recs, &f.info); err != nil {
		if terr := c.TruncateFromEnd(l.LogEndOffset()); terr != nil {
			return 0, terr
		}
		return 0, err
	}
	return f.info.NumRecords, nil
}

// wholeBatches returns the prefix of recs made of complete batches: a Kafka leader may cut
// the last batch of a partition short. A batch whose length is impossible is left in, for the
// log's check to reject.
func wholeBatches(recs []byte) []byte {
	n := 0
	for len(recs)-n >= logstore.LogOverhead {
		b := recs[n:]
		size := int64(int32(uint32(b[8])<<24|uint32(b[9])<<16|uint32(b[10])<<8|uint32(b[11]))) + logstore.LogOverhead
		if size < logstore.BatchHeaderSize {
			return recs
		}
		if size > int64(len(b)) {
			break
		}
		n += int(size)
	}
	return recs[:n]
}

// truncationOffset is Kafka's AbstractFetcherThread.getOffsetTruncationState: where to
// truncate given the leader's answer for an epoch (OffsetForLeaderEpoch, or a fetch's
// diverging_epoch), the local log end offset leo, and fallback for an UNDEFINED end offset.
// complete is false when the leader answered an epoch this replica does not have: it then
// truncates to the end of its largest epoch below that one and asks again.
func truncationOffset(c *EpochCache, leo, fallback int64, leader EpochEndOffset) (offset int64, complete bool) {
	switch {
	case leader.EndOffset == UndefinedEpochOffset:
		return fallback, true
	case leader.Epoch == UndefinedEpoch:
		return min(leader.EndOffset, leo), true
	}
	epoch, end := c.EndOffsetFor(leader.Epoch, leo)
	switch {
	case end == UndefinedEpochOffset:
		return min(leader.EndOffset, leo), true
	case epoch != leader.Epoch:
		return min(end, leo), false
	default:
		return min(end, leader.EndOffset, leo), true
	}
}

// truncateLog truncates the log to offset (when below its end) and the epoch cache to the
// log's new end (which may be lower: a batch is never split).
func truncateLog(ps *partState, offset int64) error {
	l := ps.r.Log
	start := l.LogStartOffset()
	if offset < l.LogEndOffset() {
		if err := l.TruncateTo(offset); err != nil {
			return err
		}
	}
	if offset < start {
		return ps.r.Epochs.Clear() // the log was emptied and restarted at offset
	}
	return ps.r.Epochs.TruncateFromEnd(l.LogEndOffset())
}

// readKmsgResponse decodes a flexible (header v1) kmsg response frame into resp.
func readKmsgResponse(frame []byte, resp kmsg.Response) error {
	r := reader{b: frame}
	r.int32()
	r.skipTags()
	if r.bad {
		return errMalformedKmsgAnswer
	}
	if err := resp.ReadFrom(r.b); err != nil {
		return fmt.Errorf("%w: %v", errMalformedKmsgAnswer, err)
	}
	return nil
}

func (f *Fetcher) handleEpochs(s *slot, frame []byte) error {
	resp := kmsg.NewPtrOffsetForLeaderEpochResponse()
	resp.SetVersion(offsetForLeaderEpochVersion)
	if err := readKmsgResponse(frame, resp); err != nil {
		return err
	}
	for _, t := range resp.Topics {
		for i := range t.Partitions {
			p := &t.Partitions[i]
			f.mu.Lock()
			ps := f.resolveLocked(s, []byte(t.Topic), p.Partition)
			f.mu.Unlock()
			if ps != nil {
				f.applyEpoch(ps, p)
				ps.out.seen = true
			}
		}
	}
	return nil
}

// applyEpoch truncates a partition after the leader's OffsetForLeaderEpoch answer.
func (f *Fetcher) applyEpoch(ps *partState, p *kmsg.OffsetForLeaderEpochResponseTopicPartition) {
	ps.busy.Lock()
	defer ps.busy.Unlock()
	if ps.removed.Load() {
		return
	}
	if p.ErrorCode != 0 {
		f.partitionError(ps, p.ErrorCode, "OffsetForLeaderEpoch")
		return
	}
	l := ps.r.Log
	leo := l.LogEndOffset()
	hw := min(max(ps.r.HighWatermark, 0), leo)
	off, complete := truncationOffset(ps.r.Epochs, leo, hw, EpochEndOffset{Epoch: p.LeaderEpoch, EndOffset: p.EndOffset})
	err := truncateLog(ps, off)
	if err == nil && !complete {
		if _, ok := ps.r.Epochs.Latest(); !ok { // no earlier epoch to ask about
			err, complete = truncateLog(ps, hw), true
		}
	}
	if err != nil {
		ps.out = outcome{delay: true, errSet: true, errCode: logstore.CodeOf(err)}
		f.log.Warn("replication: truncation failed", "partition", ps.tp, "err", err)
		return
	}
	ps.out = outcome{errSet: true}
	if complete {
		ps.out.phase = PhaseFetching
	}
	if l.LogEndOffset() < leo {
		f.log.Info("replication: truncated to the leader's epoch end (OffsetForLeaderEpoch)", "partition", ps.tp,
			"from", leo, "to", l.LogEndOffset(), "leaderEpoch", p.LeaderEpoch, "leaderEndOffset", p.EndOffset, "complete", complete)
	}
}

func (f *Fetcher) handleList(s *slot, frame []byte) error {
	resp := kmsg.NewPtrListOffsetsResponse()
	resp.SetVersion(listOffsetsVersion)
	if err := readKmsgResponse(frame, resp); err != nil {
		return err
	}
	for _, t := range resp.Topics {
		for i := range t.Partitions {
			p := &t.Partitions[i]
			f.mu.Lock()
			ps := f.resolveLocked(s, []byte(t.Topic), p.Partition)
			f.mu.Unlock()
			if ps != nil {
				f.applyList(ps, s.kind, p)
				ps.out.seen = true
			}
		}
	}
	return nil
}

// applyList is Kafka's fetchOffsetAndTruncate, one ListOffsets answer at a time.
func (f *Fetcher) applyList(ps *partState, kind reqKind, p *kmsg.ListOffsetsResponseTopicPartition) {
	ps.busy.Lock()
	defer ps.busy.Unlock()
	if ps.removed.Load() {
		return
	}
	if p.ErrorCode != 0 {
		f.partitionError(ps, p.ErrorCode, "ListOffsets")
		return
	}
	if p.Offset < 0 {
		f.partitionError(ps, kerr.UnknownServerError.Code, "ListOffsets")
		return
	}
	l := ps.r.Log
	leo := l.LogEndOffset()
	var err error
	ps.out = outcome{errSet: true, phase: PhaseFetching}
	switch {
	case kind == kindListLatest && p.Offset < leo:
		// The leader's log is shorter (unclean election): truncate to its end.
		f.log.Warn("replication: leader's log end is below ours; truncating", "partition", ps.tp, "from", leo, "to", p.Offset)
		err = truncateLog(ps, p.Offset)
	case kind == kindListLatest:
		ps.out.phase = PhaseListEarliest
	case p.Offset > leo:
		// The leader deleted what we would fetch next: start over at its log start.
		f.log.Info("replication: leader's log starts past ours; restarting the log", "partition", ps.tp, "from", leo, "at", p.Offset)
		if err = l.TruncateFullyAndStartAt(p.Offset); err == nil {
			err = ps.r.Epochs.Clear()
		}
	}
	if err != nil {
		ps.out = outcome{delay: true, errSet: true, errCode: logstore.CodeOf(err)}
		f.log.Warn("replication: out-of-range truncation failed", "partition", ps.tp, "err", err)
	}
}
