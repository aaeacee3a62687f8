package bench

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// execute runs the built clients: consumers (now or after producing), producers on schedule,
// the sampler in this goroutine, then fills in the Result.
//
//	concurrent:  consumers start ─ (group: settle) ─ produce ─ flush ─ wait until all acked are read
//	after:       produce ─ flush ─ consumers start ─ wait until all acked are read
//	none:        produce ─ flush
func (r *run) execute(ctx context.Context) {
	w := &r.w
	defer r.closeClients()
	consCtx, stopConsumers := context.WithCancel(ctx)
	defer stopConsumers()
	var consWG sync.WaitGroup
	startConsumers := func() {
		for _, c := range r.consumers {
			consWG.Go(func() { c.run(consCtx) })
		}
	}
	if w.Consume == "concurrent" {
		startConsumers()
		if r.group != nil {
			r.waitGroupSettled(ctx)
		}
	}

	start := time.Now()
	r.res.Start = start
	smp := newSampler(start, r.o.SampleEvery, w.Warmup.D(), r.producers, r.consumers, r.o.Progress)
	var ph phases
	done := make(chan struct{})
	go func() {
		defer close(done)
		ph = r.flow(ctx, start, startConsumers)
		stopConsumers()
		consWG.Wait()
	}()
	tick := time.NewTicker(r.o.SampleEvery)
	defer tick.Stop()
	for running := true; running; {
		select {
		case now := <-tick.C:
			smp.sample(now, false)
		case <-done:
			running = false
		}
	}
	smp.sample(time.Now(), true)
	smp.done()
	r.finish(ctx, smp, ph)
}

// phases are the times the Result's throughputs are computed over.
type phases struct {
	produceStart, produceEnd time.Time
	consumeStart             time.Time
	consumeComplete          bool // every acknowledged record was read
}

func (r *run) flow(ctx context.Context, start time.Time, startConsumers func()) phases {
	w := &r.w
	ph := phases{produceStart: start, consumeStart: start}
	var deadline time.Time
	if w.Duration > 0 {
		deadline = start.Add(w.Duration.D())
	}
	var wg sync.WaitGroup
	for _, p := range r.producers {
		p.deadline = deadline
		wg.Go(func() { p.run(ctx, start) })
	}
	wg.Wait()
	// Flush waits for every acknowledgment; after an interrupt, give it a few seconds.
	fctx := ctx
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		fctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
	}
	for _, p := range r.producers {
		wg.Go(func() {
			if err := p.cl.Flush(fctx); err != nil && ctx.Err() == nil {
				r.errs.add("flush", err)
			}
		})
	}
	wg.Wait()
	ph.produceEnd = time.Now()
	if len(r.consumers) == 0 || ctx.Err() != nil {
		return ph
	}
	if w.Consume == "after" {
		ph.consumeStart = time.Now()
		startConsumers()
	}
	ph.consumeComplete = r.waitConsumed(ctx)
	return ph
}

// waitGroupSettled waits until the group's members hold all partitions between them, so that
// producing does not race the group's joins and rebalances.
func (r *run) waitGroupSettled(ctx context.Context) {
	partitions := 0
	for _, t := range r.topics {
		partitions += int(t.Partitions)
	}
	deadline := time.Now().Add(r.o.GroupSettleTimeout)
	for !r.group.settled(len(r.consumers), partitions) {
		if time.Now().After(deadline) {
			r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("consumer group not settled after %v; producing anyway", r.o.GroupSettleTimeout))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitConsumed waits until every acknowledged record was consumed, or nothing new arrived for
// consume_timeout; it reports whether all arrived.
func (r *run) waitConsumed(ctx context.Context) bool {
	acked, ackedTotal := r.ackedSets()
	last, lastChange := int64(-1), time.Now()
	for {
		u := r.ver.Unique()
		if u >= ackedTotal && r.ver.lost(acked) == 0 {
			return true
		}
		if u != last {
			last, lastChange = u, time.Now()
		}
		if time.Since(lastChange) > r.w.ConsumeTimeout.D() {
			r.res.Warnings = append(r.res.Warnings, fmt.Sprintf(
				"consumers stopped: nothing new for %v with %d of %d acknowledged records read", r.w.ConsumeTimeout, u, ackedTotal))
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (r *run) ackedSets() ([]*bitset, int64) {
	sets := make([]*bitset, len(r.producers))
	var n int64
	for i, p := range r.producers {
		sets[i] = p.ackedSnapshot()
		n += p.ackedRecords.Load()
	}
	return sets, n
}

// finish fills in the Result from the sampler and the counters.
func (r *run) finish(ctx context.Context, smp *sampler, ph phases) {
	res, w := r.res, &r.w
	now := time.Now()
	res.ElapsedS = now.Sub(ph.produceStart).Seconds()
	res.Interrupted = ctx.Err() != nil
	res.Series = smp.series
	t := smp.totals()

	prod := &res.Produce
	prod.Records, prod.Bytes, prod.Errors = t.acked, t.ackedBytes, t.produceErrors
	if len(r.producers) > 0 {
		prod.ElapsedS = ph.produceEnd.Sub(ph.produceStart).Seconds()
		prod.Latency = summarize(smp.prodTotal, true)
		if w.Rate > 0 {
			prod.SendLag = summarize(smp.lagTotal, false)
		}
	}
	rate(prod)

	cons := &res.Consume
	if len(r.consumers) > 0 {
		cons.Records, cons.Bytes = t.consumed, t.consumedBytes
		var lastNew int64
		for _, c := range r.consumers {
			lastNew = max(lastNew, c.lastNew.Load())
		}
		if lastNew > 0 {
			cons.ElapsedS = time.Unix(0, lastNew).Sub(ph.consumeStart).Seconds()
		}
		if w.Consume == "concurrent" {
			cons.EndToEnd = summarize(smp.e2eTotal, true)
		}
		rate(cons)
	}

	acked, _ := r.ackedSets()
	v := Verification{}
	if len(r.consumers) > 0 {
		v = r.ver.Verify(acked)
		if res.Interrupted {
			v.Lost = 0
			res.Warnings = append(res.Warnings, "interrupted: loss was not checked")
		}
	}
	v.Sent, v.Acked = t.sent, t.acked
	res.Verify = v
	if w.Warmup > 0 && prod.Latency == nil && t.acked > 0 {
		res.Warnings = append(res.Warnings, "the warmup covered the whole run: no latency totals")
	}
	res.Errors = r.errs.list()
}

func rate(p *Phase) {
	if p.ElapsedS > 0 {
		p.RecordsPerSec = float64(p.Records) / p.ElapsedS
		p.MiBPerSec = float64(p.Bytes) / p.ElapsedS / (1 << 20)
	}
}
