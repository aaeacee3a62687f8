package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Options are a run's settings besides the workload.
type Options struct {
	Brokers  []string
	Workload Workload
	Name     string // label for reports; empty: the workload's name
	// Progress receives the live progress line once a second ("\r"-rewritten: give it a
	// terminal); nil keeps the run quiet.
	Progress io.Writer
	// ClientOpts are added to every client (TLS, SASL, a logger …).
	ClientOpts []kgo.Opt
	// RunID is the id stamped into every record; 0 picks a random one.
	RunID uint32
	// SampleEvery is the series' interval (default one second).
	SampleEvery time.Duration
	// GroupSettleTimeout bounds the wait for a consumer group to take all partitions before
	// producing starts (default 30 s).
	GroupSettleTimeout time.Duration
	// SetupTimeout bounds finding or creating the topics and their offsets (default 30 s).
	SetupTimeout time.Duration
}

// run is the state of one Run.
type run struct {
	o      Options
	w      Workload
	runID  uint32
	res    *Result
	errs   errorLog
	topics []Topic
	names  []string
	ver    *Verifier

	producers []*producer
	consumers []*consumer
	group     *assignments // group mode: who holds how many partitions
}

// Run runs the workload against the brokers and returns what it measured. An error means the
// run could not be set up (bad workload, unreachable brokers, topics missing); failures during
// the run are counted in the Result. Cancelling ctx stops the run early: the Result then says
// Interrupted and does not count loss.
func Run(ctx context.Context, o Options) (*Result, error) {
	w := o.Workload
	if err := w.Validate(); err != nil {
		return nil, err
	}
	if len(o.Brokers) == 0 {
		return nil, errors.New("no brokers given")
	}
	if o.SampleEvery <= 0 {
		o.SampleEvery = time.Second
	}
	if o.GroupSettleTimeout <= 0 {
		o.GroupSettleTimeout = 30 * time.Second
	}
	if o.SetupTimeout <= 0 {
		o.SetupTimeout = 30 * time.Second
	}
	r := &run{o: o, w: w, runID: o.RunID}
	for r.runID == 0 {
		r.runID = rand.Uint32()
	}
	r.res = &Result{
		Version:  ResultVersion,
		Name:     o.Name,
		Brokers:  o.Brokers,
		RunID:    fmt.Sprintf("%08x", r.runID),
		Workload: w,
		Host:     hostInfo(),
	}
	if r.res.Name == "" {
		r.res.Name = w.Name
	}
	// The admin client waits for new topics' metadata: let its metadata cache age quickly.
	admin, err := kgo.NewClient(append(r.baseOpts(), kgo.MetadataMinAge(50*time.Millisecond))...)
	if err != nil {
		return nil, fmt.Errorf("admin client: %w", err)
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	setupCtx, cancel := context.WithTimeout(ctx, o.SetupTimeout)
	defer cancel()
	defer r.deleteTopics(adm) // those created, also when the setup fails after creating them
	if err := r.setupTopics(setupCtx, adm); err != nil {
		return nil, err
	}
	if err := r.build(setupCtx, adm); err != nil {
		r.closeClients()
		return nil, err
	}
	cancel()
	r.execute(ctx)
	return r.res, nil
}

func (r *run) baseOpts() []kgo.Opt {
	return append([]kgo.Opt{kgo.SeedBrokers(r.o.Brokers...), kgo.ClientID("spate-bench")}, r.o.ClientOpts...)
}

// topicName makes a legal Kafka topic name ([a-zA-Z0-9._-], at most 249 bytes).
func topicName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b[:min(len(b), 249)])
}

// setupTopics finds or creates the topics and waits until every partition has a leader.
func (r *run) setupTopics(ctx context.Context, adm *kadm.Client) error {
	w := &r.w
	prefix := w.Topic
	if prefix == "" {
		prefix = "spate-bench-" + w.Name + "-" + r.res.RunID
	}
	for i := range w.Topics {
		name := prefix
		if w.Topics > 1 {
			name += "-" + strconv.Itoa(i)
		}
		r.names = append(r.names, topicName(name))
	}
	details, err := adm.ListTopics(ctx, r.names...)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	var missing []string
	for _, n := range r.names {
		if d, ok := details[n]; !ok || d.Err != nil {
			missing = append(missing, n)
		}
	}
	created := map[string]bool{}
	if len(missing) > 0 {
		if !w.CreateTopics {
			return fmt.Errorf("topics %s do not exist and create_topics is false", strings.Join(missing, ", "))
		}
		var configs map[string]*string
		for k, v := range w.TopicConfigs {
			if configs == nil {
				configs = map[string]*string{}
			}
			configs[k] = &v
		}
		resps, err := adm.CreateTopics(ctx, w.Partitions, w.ReplicationFactor, configs, missing...)
		if err != nil {
			return fmt.Errorf("create topics: %w", err)
		}
		for _, cr := range resps.Sorted() {
			switch {
			case cr.Err == nil:
				created[cr.Topic] = true
			case errors.Is(cr.Err, kerr.TopicAlreadyExists):
			default:
				return fmt.Errorf("create topic %s: %w %s", cr.Topic, cr.Err, cr.ErrMessage)
			}
		}
	}
	for _, n := range r.names {
		r.topics = append(r.topics, Topic{Name: n, Created: created[n]})
	}
	r.res.Topics = r.topics
	return r.waitForLeaders(ctx, adm)
}

func (r *run) waitForLeaders(ctx context.Context, adm *kadm.Client) error {
	for {
		details, err := adm.ListTopics(ctx, r.names...)
		ready := err == nil
		for i, n := range r.names {
			d, ok := details[n]
			if !ok || d.Err != nil || len(d.Partitions) == 0 {
				ready = false
				continue
			}
			r.topics[i].Partitions = int32(len(d.Partitions))
			for _, p := range d.Partitions {
				if p.Err != nil || p.Leader < 0 {
					ready = false
				}
			}
		}
		if ready {
			for _, t := range r.topics {
				if !t.Created && t.Partitions != r.w.Partitions {
					r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("topic %s existed with %d partitions (workload: %d)", t.Name, t.Partitions, r.w.Partitions))
				}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topics %s: waiting for every partition to have a leader (last error: %v): %w",
				strings.Join(r.names, ", "), err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// deleteTopics deletes the topics this run created, if the workload says so.
func (r *run) deleteTopics(adm *kadm.Client) {
	if !r.w.DeleteTopics {
		return
	}
	var del []string
	for _, t := range r.topics {
		if t.Created {
			del = append(del, t.Name)
		}
	}
	if len(del) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resps, err := adm.DeleteTopics(ctx, del...)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("delete topics %s: %v", strings.Join(del, ", "), err))
	}
}

// build creates the producer and consumer clients (nothing runs yet).
func (r *run) build(ctx context.Context, adm *kadm.Client) error {
	w := &r.w
	r.ver = NewVerifier(r.runID, w.Producers)
	if err := r.buildProducers(); err != nil {
		return err
	}
	if w.Consumers == 0 {
		return nil
	}
	if w.ConsumerMode == "group" {
		return r.buildGroupConsumers()
	}
	// Direct consumers start at the log end as it is before anything is produced, and each
	// takes every consumers-th partition.
	ends, err := adm.ListEndOffsets(ctx, r.names...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("list end offsets: %w", err)
	}
	assign := make([]map[string]map[int32]kgo.Offset, w.Consumers)
	i := 0
	for _, t := range r.topics {
		for p := range t.Partitions {
			lo, ok := ends.Lookup(t.Name, p)
			if !ok {
				return fmt.Errorf("list end offsets: no answer for %s/%d", t.Name, p)
			}
			c := i % w.Consumers
			if assign[c] == nil {
				assign[c] = map[string]map[int32]kgo.Offset{}
			}
			if assign[c][t.Name] == nil {
				assign[c][t.Name] = map[int32]kgo.Offset{}
			}
			assign[c][t.Name][p] = kgo.NewOffset().At(lo.Offset)
			i++
		}
	}
	for c, parts := range assign {
		if parts == nil {
			r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("consumers %d to %d have no partition to read", c, w.Consumers-1))
			break
		}
		opts := append(r.consumerOpts(), kgo.ConsumePartitions(parts))
		if err := r.addConsumer(c, false, opts); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) buildProducers() error {
	w := &r.w
	payload := newPayload(w.Payload, max(1<<20, 2*w.RecordSize.Max()), uint64(r.runID))
	keyTable := newKeyTable(w.Keys)
	opts := r.baseOpts()
	opts = append(opts,
		kgo.RequiredAcks(map[string]kgo.Acks{"all": kgo.AllISRAcks(), "1": kgo.LeaderAck(), "0": kgo.NoAck()}[w.Acks]),
		kgo.ProducerLinger(w.Linger.D()),
		kgo.ProducerBatchCompression(map[string]kgo.CompressionCodec{"none": kgo.NoCompression(),
			"gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(),
			"zstd": kgo.ZstdCompression()}[w.Compression]),
	)
	if !w.idempotent() {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	if w.BatchMaxBytes > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(w.BatchMaxBytes))
	}
	if w.MaxBufferedRecords > 0 {
		opts = append(opts, kgo.MaxBufferedRecords(w.MaxBufferedRecords))
	}
	for i := range w.Producers {
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return fmt.Errorf("producer client: %w", err)
		}
		count := int64(-1)
		if w.Records > 0 {
			count = w.Records / int64(w.Producers)
			if int64(i) < w.Records%int64(w.Producers) {
				count++
			}
		}
		r.producers = append(r.producers, &producer{
			id: uint32(i), runID: r.runID, cl: cl, topics: r.names,
			size: w.RecordSize, keys: keyGen{d: w.Keys, table: keyTable}, payload: payload,
			rng:  rand.New(rand.NewPCG(uint64(r.runID), uint64(i))),
			errs: &r.errs, rate: w.Rate, of: w.Producers, count: count,
			lat: newInterval(), lag: newInterval(),
		})
	}
	return nil
}

func (r *run) consumerOpts() []kgo.Opt {
	w := &r.w
	opts := r.baseOpts()
	if w.FetchMaxWait > 0 {
		opts = append(opts, kgo.FetchMaxWait(w.FetchMaxWait.D()))
	}
	if w.FetchMaxBytes > 0 {
		opts = append(opts, kgo.FetchMaxBytes(w.FetchMaxBytes))
	}
	if w.FetchMaxPartitionBytes > 0 {
		opts = append(opts, kgo.FetchMaxPartitionBytes(w.FetchMaxPartitionBytes))
	}
	return opts
}

func (r *run) buildGroupConsumers() error {
	w := &r.w
	group := w.ConsumerGroup
	if group == "" {
		group = topicName("spate-bench-" + w.Name + "-" + r.res.RunID)
	}
	// A fresh topic is read from its start; an existing one from the run's start time (the
	// records' CreateTime is this process's clock). Direct consumers use exact offsets.
	reset := kgo.NewOffset().AtStart()
	for _, t := range r.topics {
		if !t.Created {
			reset = kgo.NewOffset().AfterMilli(time.Now().UnixMilli())
		}
	}
	a := &assignments{}
	r.group = a
	for c := range w.Consumers {
		opts := append(r.consumerOpts(),
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics(r.names...),
			kgo.ConsumeResetOffset(reset),
			kgo.BlockRebalanceOnPoll(),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { a.add(c, m, 1) }),
			kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
				// Everything polled was processed before AllowRebalance: commit it all, so the
				// next owner does not read it again.
				if err := cl.CommitUncommittedOffsets(ctx); err != nil {
					r.errs.add("commit", err)
				}
				a.add(c, m, -1)
			}),
			kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { a.add(c, m, -1) }),
		)
		if err := r.addConsumer(c, true, opts); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) addConsumer(id int, group bool, opts []kgo.Opt) error {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("consumer client: %w", err)
	}
	r.consumers = append(r.consumers, &consumer{
		id: id, cl: cl, v: r.ver, e2e: r.w.Consume == "concurrent", lat: newInterval(), errs: &r.errs, group: group,
	})
	return nil
}

func (r *run) closeClients() {
	var wg sync.WaitGroup
	for _, p := range r.producers {
		wg.Go(p.cl.Close)
	}
	for _, c := range r.consumers {
		wg.Go(c.cl.Close)
	}
	wg.Wait()
}

// errorLog keeps the distinct errors of a run, with counts.
type errorLog struct {
	mu     sync.Mutex
	counts map[string]int // Invariant: guarded by mu.
	order  []string       // first maxErrors distinct messages. Invariant: guarded by mu.
}

const maxErrors = 20

func (l *errorLog) add(what string, err error) {
	msg := what + ": " + err.Error()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil {
		l.counts = map[string]int{}
	}
	if _, ok := l.counts[msg]; !ok && len(l.order) < maxErrors {
		l.order = append(l.order, msg)
	}
	l.counts[msg]++
}

func (l *errorLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, m := range l.order {
		if n := l.counts[m]; n > 1 {
			m += fmt.Sprintf(" (×%d)", n)
		}
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}
