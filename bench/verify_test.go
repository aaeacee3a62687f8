package bench

import (
	"fmt"
	"testing"
)

// crafted builds the records a run would contain: producer p's record seq, keyed, in a
// partition chosen from the key (as a client's partitioner would).
type crafted struct {
	runID uint32
}

func (c crafted) record(p uint32, seq uint64) (partition int32, key, value []byte) {
	key = fmt.Appendf(nil, "key-%d", seq%4)
	value = AppendRecord(nil, key, RecordHeader{RunID: c.runID, Producer: p, Seq: seq, Intended: int64(seq)}, []byte("payload"))
	return int32(seq % 4 % 2), key, value
}

func ackedAll(producers int, n uint64) []*bitset {
	sets := make([]*bitset, producers)
	for p := range sets {
		sets[p] = &bitset{}
		for s := range n {
			sets[p].set(s)
		}
	}
	return sets
}

// TestVerifierCleanRun: every acknowledged record delivered once, in order: nothing reported,
// whatever the interleaving of partitions and producers.
func TestVerifierCleanRun(t *testing.T) {
	c := crafted{runID: 42}
	v := NewVerifier(42, 2)
	for seq := range uint64(100) {
		for p := range uint32(2) {
			part, k, val := c.record(p, seq)
			if s := v.ObserveRecord("t", part, k, val); s != StatusNew {
				t.Fatalf("p%d seq %d: %v", p, seq, s)
			}
		}
	}
	got := v.Verify(ackedAll(2, 100))
	if want := (Verification{Checked: true, Consumed: 200, Unique: 200}); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

// TestVerifierCatchesInjectedFaults feeds the verifier a run's records with one fault injected
// at a time and checks it reports exactly that fault.
func TestVerifierCatchesInjectedFaults(t *testing.T) {
	const n = 50
	c := crafted{runID: 7}
	type rec struct {
		part       int32
		key, value []byte
	}
	// A clean stream of producer 0's records, in order.
	clean := func() []rec {
		var rs []rec
		for seq := range uint64(n) {
			p, k, v := c.record(0, seq)
			rs = append(rs, rec{p, k, v})
		}
		return rs
	}
	for _, tc := range []struct {
		name   string
		inject func([]rec) []rec
		acked  []*bitset
		want   Verification
		status Status // reported for the injected record (StatusNew: not checked)
	}{
		{
			name:   "loss",
			inject: func(rs []rec) []rec { return append(rs[:10], rs[11:]...) },
			want:   Verification{Consumed: n - 1, Unique: n - 1, Lost: 1},
			status: StatusNew,
		},
		{
			name:   "loss of many",
			inject: func(rs []rec) []rec { return rs[:n-20] },
			want:   Verification{Consumed: n - 20, Unique: n - 20, Lost: 20},
		},
		{
			name:   "duplication",
			inject: func(rs []rec) []rec { return append(rs, rs[3]) },
			want:   Verification{Consumed: n + 1, Unique: n, Duplicated: 1},
			status: StatusDuplicate,
		},
		{
			name: "replay of a stretch (as after a consumer restart)",
			inject: func(rs []rec) []rec {
				return append(rs[:30:30], append(rs[20:30:30], rs[30:]...)...)
			},
			want:   Verification{Consumed: n + 10, Unique: n, Duplicated: 10},
			status: StatusNew,
		},
		{
			name: "reordering within a partition",
			inject: func(rs []rec) []rec {
				// records 4 and 6 share a key and so a partition: deliver 6 before 4
				rs[4], rs[6] = rs[6], rs[4]
				return rs
			},
			want:   Verification{Consumed: n, Unique: n, Reordered: 1},
			status: StatusReordered,
		},
		{
			name: "payload corruption",
			inject: func(rs []rec) []rec {
				rs[len(rs)-1].value[HeaderSize+2] ^= 0x10
				return rs
			},
			// the corrupt record is not counted as read, so it is also lost
			want:   Verification{Consumed: n - 1, Unique: n - 1, Corrupt: 1, Lost: 1},
			status: StatusCorrupt,
		},
		{
			name: "sequence corruption",
			inject: func(rs []rec) []rec {
				rs[len(rs)-1].value[19] ^= 0x01
				return rs
			},
			want:   Verification{Consumed: n - 1, Unique: n - 1, Corrupt: 1, Lost: 1},
			status: StatusCorrupt,
		},
		{
			name: "key corruption",
			inject: func(rs []rec) []rec {
				rs[len(rs)-1].key = []byte("key-9")
				return rs
			},
			want:   Verification{Consumed: n - 1, Unique: n - 1, Corrupt: 1, Lost: 1},
			status: StatusCorrupt,
		},
		{
			name: "truncated value",
			inject: func(rs []rec) []rec {
				rs[len(rs)-1].value = rs[len(rs)-1].value[:HeaderSize+3]
				return rs
			},
			want:   Verification{Consumed: n - 1, Unique: n - 1, Corrupt: 1, Lost: 1},
			status: StatusCorrupt,
		},
		{
			name: "impossible producer with a valid checksum",
			inject: func(rs []rec) []rec {
				k := []byte("k")
				return append(rs, rec{0, k, AppendRecord(nil, k, RecordHeader{RunID: 7, Producer: 5}, nil)})
			},
			want:   Verification{Consumed: n, Unique: n, Corrupt: 1},
			status: StatusCorrupt,
		},
		{
			name: "another run's record and a non-bench record",
			inject: func(rs []rec) []rec {
				_, k, other := crafted{runID: 8}.record(0, 1)
				return append(rs, rec{0, k, other}, rec{0, nil, []byte("hello")})
			},
			want:   Verification{Consumed: n, Unique: n, Foreign: 2},
			status: StatusForeign,
		},
		{
			name:   "a record consumed whose produce was not acknowledged",
			inject: func(rs []rec) []rec { return rs },
			acked: func() []*bitset {
				a := ackedAll(1, n)
				a[0].w[0] &^= 1 << 5
				return a
			}(),
			want: Verification{Consumed: n, Unique: n, Unacked: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := NewVerifier(7, 1)
			rs := tc.inject(clean())
			statuses := map[Status]int{}
			for _, r := range rs {
				statuses[v.ObserveRecord("topic", r.part, r.key, r.value)]++
			}
			acked := tc.acked
			if acked == nil {
				acked = ackedAll(1, n)
			}
			got := v.Verify(acked)
			tc.want.Checked = true
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			if tc.status != StatusNew && statuses[tc.status] == 0 {
				t.Errorf("no record was reported %v: %v", tc.status, statuses)
			}
			if got.OK() != (tc.want.Lost+tc.want.Duplicated+tc.want.Reordered+tc.want.Corrupt == 0) {
				t.Errorf("OK() = %v", got.OK())
			}
		})
	}
}

// TestVerifierOrderIsPerPartition: one producer's records interleave freely across partitions;
// only going back within a partition is a reorder.
func TestVerifierOrderIsPerPartition(t *testing.T) {
	v := NewVerifier(1, 1)
	rec := func(seq uint64) []byte { return AppendRecord(nil, nil, RecordHeader{RunID: 1, Seq: seq}, nil) }
	// partition 0 gets 0, 2, 4; partition 1 gets 1, 3, 5: read partition 1 first.
	for _, s := range []struct {
		part int32
		seq  uint64
	}{{1, 1}, {1, 3}, {1, 5}, {0, 0}, {0, 2}, {0, 4}} {
		if st := v.ObserveRecord("t", s.part, nil, rec(s.seq)); st != StatusNew {
			t.Fatalf("seq %d in partition %d: %v", s.seq, s.part, st)
		}
	}
	// The same order on one topic-partition of another topic is fine too; within one it is not.
	v.ObserveRecord("u", 0, nil, rec(10))
	if st := v.ObserveRecord("u", 0, nil, rec(9)); st != StatusReordered {
		t.Fatalf("got %v, want reordered", st)
	}
}

func TestBitset(t *testing.T) {
	var a, b bitset
	for _, i := range []uint64{0, 1, 63, 64, 1000, 100_000} {
		if a.set(i) {
			t.Fatalf("%d set twice?", i)
		}
		if !a.set(i) || !a.has(i) {
			t.Fatalf("%d not set", i)
		}
	}
	b.set(1)
	b.set(1000)
	if a.count() != 6 || a.countAndNot(&b) != 4 || b.countAndNot(&a) != 0 || a.has(2) || b.has(1<<30) {
		t.Fatal("bitset arithmetic")
	}
}
