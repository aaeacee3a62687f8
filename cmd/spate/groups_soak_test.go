package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spate-broker/spate/broker"
	"github.com/spate-broker/spate/netio"
)

// The group soak. Environment (or flags of the test binary):
//
//	SPATE_CHAOS=long          run each balancer for SPATE_SOAK_DURATION (default 3m) instead of 8 s
//	SPATE_SOAK_DURATION=90s   chaos time per balancer, in any mode
//	SPATE_SOAK_SEED=n, -seed n   replay a run: the seed is printed at the start and on failure
var soakSeed = flag.Int64("seed", 0, "seed of the group soak (0: from the clock)")

func soakDuration(t *testing.T) time.Duration {
	d := 8 * time.Second
	if os.Getenv("SPATE_CHAOS") == "long" {
		d = 3 * time.Minute
	}
	if s := os.Getenv("SPATE_SOAK_DURATION"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("SPATE_SOAK_DURATION: %v", err)
		}
		d = v
	}
	return d
}

func soakSeedValue(t *testing.T) int64 {
	if *soakSeed != 0 {
		return *soakSeed
	}
	if s := os.Getenv("SPATE_SOAK_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("SPATE_SOAK_SEED: %v", err)
		}
		return v
	}
	return time.Now().UnixNano()
}

// soakBroker starts a broker in this process (so that group timers can be short: a 100 ms
// initial rebalance delay and a 100 ms minimum session timeout) and returns its address.
func soakBroker(t *testing.T) (string, *broker.Broker) {
	t.Helper()
	addr := freeAddr(t)
	host, port, _ := strings.Cut(addr, ":")
	p, _ := strconv.Atoi(port)
	cfg := broker.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.AdvertisedHost, cfg.AdvertisedPort = host, int32(p)
	cfg.Groups.InitialRebalanceDelay = 100 * time.Millisecond
	cfg.Groups.MinSessionTimeout = 100 * time.Millisecond
	cfg.Groups.OffsetsTopicPartitions = 10
	level := slog.LevelWarn
	if os.Getenv("SPATE_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	b, err := broker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := netio.Start(netio.Config{Addr: addr, NumLoops: 2}, b)
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Drain()
		srv.Stop(ctx)
		b.Close()
	})
	return addr, b
}

// soakSlot is one of the group's eight places; its member is restarted as a new incarnation.
type soakSlot struct {
	id          int
	static      bool // the slot's members share a group.instance.id (KIP-345)
	incarnation int
	m           *fgMember
}

// crash silences the member as if its process died: its connections are cut and it never
// sends LeaveGroup; the group notices when its session times out (a static member's restart
// within the session takes its place with no rebalance).
func (m *fgMember) crash() {
	if m.cl == nil {
		return
	}
	m.dialer.sever()
	m.cancel()
	<-m.done
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	m.cl.LeaveGroupContext(canceled)
	m.cl.Close()
	m.cl = nil
}

// TestGroupSoak: eight franz-go members in one group over 100 partitions, with the eager range
// balancer and with cooperative-sticky, while a producer writes a record every millisecond.
// Two of the eight places are static members (group.instance.id). At random (seeded: the seed
// is printed; SPATE_SOAK_SEED or -seed replays it) one or two members are restarted — some
// leaving the group, some crashing (connections cut, no LeaveGroup: the session expires, or a
// static member's restart takes its place) — after a random pause. After each restart the
// group must converge within 60 s: Stable, every partition owned by exactly one live member,
// each member owning what the broker assigned, one generation. In the end every acknowledged
// record was delivered with its value, the committed offsets are the log ends, and no record
// was committed twice (duplicates only from uncommitted work). 8 s of chaos per balancer
// normally; SPATE_CHAOS=long runs each for minutes.
func TestGroupSoak(t *testing.T) {
	seed := soakSeedValue(t)
	t.Logf("seed %d (replay with SPATE_SOAK_SEED=%d)", seed, seed)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("FAILED with seed %d: replay with SPATE_SOAK_SEED=%d go test -run 'TestGroupSoak' ./cmd/spate", seed, seed)
		}
	})
	for i, tc := range []struct {
		name     string
		balancer func() kgo.GroupBalancer
	}{{"range", kgo.RangeBalancer}, {"cooperative-sticky", kgo.CooperativeStickyBalancer}} {
		t.Run(tc.name, func(t *testing.T) {
			soak(t, seed+int64(i), tc.balancer)
		})
	}
}

func soak(t *testing.T, seed int64, balancer func() kgo.GroupBalancer) {
	start := time.Now()
	rng := rand.New(rand.NewSource(seed))
	addr, _ := soakBroker(t)
	const topic, group, parts = "soak", "soakers", int32(100)
	const session = 2 * time.Second
	adm := fgAdmin(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	if _, err := adm.CreateTopic(ctx, parts, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	cancel()
	l := newFgLedger(topic)
	logf := func(string, ...any) {} // commit failures are expected here; the ledger counts them
	if os.Getenv("SPATE_TEST_DEBUG") != "" {
		logf = t.Logf
	}
	startSlot := func(s *soakSlot) {
		s.incarnation++
		name := fmt.Sprintf("m%d.%d", s.id, s.incarnation)
		work := rand.New(rand.NewSource(rng.Int63())) // each member's own: it runs on the member's goroutine
		o := fgMemberOpts{dialer: &fgDialer{}, session: session, heartbeat: 200 * time.Millisecond, balancer: balancer(), logf: logf,
			// Up to 20 ms of work between a poll and its commit, so that a crash may hit
			// records polled and not committed.
			process: func() { time.Sleep(time.Duration(work.Intn(20)) * time.Millisecond) }}
		if s.static {
			o.instanceID = fmt.Sprintf("slot-%d", s.id)
		}
		s.m = startFgMember(t, addr, group, name, l, o)
	}
	var slots []*soakSlot
	for i := 0; i < 8; i++ {
		s := &soakSlot{id: i, static: i < 2}
		startSlot(s)
		slots = append(slots, s)
	}
	defer func() {
		for _, s := range slots {
			s.m.stop()
		}
	}()
	converge := func(what string) time.Duration {
		t.Helper()
		t0 := time.Now()
		fgWait(t, 60*time.Second, what+": group convergence (seed "+strconv.FormatInt(seed, 10)+")", func() string {
			ms := make([]*fgMember, len(slots))
			for i, s := range slots {
				ms[i] = s.m
			}
			return fgConverged(adm, group, topic, parts, ms)
		})
		return time.Since(t0)
	}
	converge("start")
	pr := startFgProducer(t, addr, topic, parts, time.Millisecond)
	defer pr.stop()

	duration := soakDuration(t)
	deadline := time.Now().Add(duration)
	steps, crashes, leaves, statics, staticKept := 0, 0, 0, 0, 0
	var slowest time.Duration
	for time.Now().Before(deadline) {
		steps++
		picked := rng.Perm(len(slots))[:1+rng.Intn(2)]
		onlyStatic := true
		for _, i := range picked {
			onlyStatic = onlyStatic && slots[i].static
		}
		var witness *fgMember // a member that stays, to read the generation
		for _, s := range slots {
			if !slices.Contains(picked, s.id) {
				witness = s.m
				break
			}
		}
		_, genBefore := witness.cl.GroupMetadata()
		var what []string
		for _, i := range picked {
			s := slots[i]
			if rng.Intn(2) == 0 {
				s.m.crash()
				crashes++
				what = append(what, s.m.name+" crashed")
			} else {
				s.m.stop() // a static member does not leave: its place waits for the restart
				leaves++
				what = append(what, s.m.name+" stopped")
			}
			if s.static {
				statics++
			}
		}
		time.Sleep(time.Duration(rng.Intn(500)) * time.Millisecond)
		for _, i := range picked {
			startSlot(slots[i])
		}
		d := converge(fmt.Sprintf("step %d (%s)", steps, strings.Join(what, ", ")))
		slowest = max(slowest, d)
		_, genAfter := witness.cl.GroupMetadata()
		note := ""
		if onlyStatic {
			note = fmt.Sprintf(" (static only: generation %d → %d)", genBefore, genAfter)
			if genAfter == genBefore {
				staticKept++
			}
		}
		t.Logf("step %d: %s; converged in %v%s", steps, strings.Join(what, ", "), d.Round(time.Millisecond), note)
		time.Sleep(time.Duration(rng.Intn(1000)) * time.Millisecond)
	}

	// Drain: stop producing, let the group consume and commit everything.
	total := pr.stop()
	if len(pr.errs) > 0 {
		t.Fatalf("produce errors: %v", pr.errs[:min(len(pr.errs), 5)])
	}
	acked := pr.ackedRecords()
	if len(acked) != total {
		t.Fatalf("%d of %d records acknowledged", len(acked), total)
	}
	ends := fgEnds(t, adm, topic)
	fgWait(t, 90*time.Second, "every record committed", func() string {
		got := fgCommitted(t, adm, group, topic)
		for p, e := range ends {
			if got[p] != e {
				return fmt.Sprintf("partition %d committed at %d, ends at %d", p, got[p], e)
			}
		}
		return ""
	})
	converge("end")
	for _, s := range slots {
		s.m.stop()
	}
	redelivered := fgCheck(t, l, acked)
	l.mu.Lock()
	fails := l.fails
	l.mu.Unlock()
	t.Logf("seed %d: %d steps (%d crashes, %d clean stops, %d of static members; %d static-only restarts without a rebalance), slowest convergence %v; %d records, %d redelivered (uncommitted work), %d failed commits; in %v",
		seed, steps, crashes, leaves, statics, staticKept, slowest.Round(time.Millisecond), total, redelivered, fails, time.Since(start).Round(time.Millisecond))
}
