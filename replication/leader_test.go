package replication

import (
	"fmt"
	"testing"
)

// TestLeaderStateLastCaughtUpTime: Kafka's Replica.updateFetchState rule, one fetch at a
// time: caught up now when the fetch reaches the leader's current end; caught up at the
// previous fetch when it reaches the leader's end at the previous fetch; never backwards.
func TestLeaderStateLastCaughtUpTime(t *testing.T) {
	l := NewLeaderState(LeaderConfig{LocalID: 1, LeaderEpoch: 3, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}, LogEndOffset: 10, NowMs: 100})
	if f, _ := l.Follower(2); f.LastCaughtUpTimeMs != 100 || f.LogEndOffset != -1 || f.LastFetchLeaderLogEndOffset != -1 {
		t.Fatalf("ISR follower at election: %+v", f)
	}
	if f, _ := l.Follower(3); f.LastCaughtUpTimeMs != 0 {
		t.Fatalf("non-ISR follower at election: %+v", f)
	}
	steps := []struct {
		fetchOffset, leaderLEO, nowMs int64
		wantCaughtUp                  int64
	}{
		{5, 10, 200, 100},  // behind now; "previous" leader end unknown, previous fetch time 0
		{10, 15, 300, 200}, // reached the leader's end at the previous fetch (10): 200
		{12, 20, 400, 200}, // behind both the current (20) and the previous (15) end
		{20, 20, 500, 500}, // caught up
		{20, 20, 450, 500}, // clock went back: never decreases
		{20, 25, 600, 500}, // reached the previous end (20) at the previous fetch (450 < 500)
	}
	for i, s := range steps {
		l.UpdateFollower(2, s.fetchOffset, s.leaderLEO, s.nowMs)
		f, _ := l.Follower(2)
		if f.LastCaughtUpTimeMs != s.wantCaughtUp || f.LogEndOffset != s.fetchOffset || f.LastFetchTimeMs != s.nowMs {
			t.Fatalf("step %d: %+v, want last caught up %d", i, f, s.wantCaughtUp)
		}
	}
}

// TestLeaderStateHighWatermark: min log end offset over the ISR (the leader's included),
// never decreasing; followers outside the ISR do not hold it; one that has not fetched does.
func TestLeaderStateHighWatermark(t *testing.T) {
	type fetch struct {
		replica     int32
		fetchOffset int64
		leaderLEO   int64
		wantHW      int64
		wantChanged bool
	}
	cases := []struct {
		name    string
		cfg     LeaderConfig
		fetches []fetch
	}{
		{"min over the ISR, never decreasing",
			LeaderConfig{LocalID: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}, LogEndOffset: 10},
			[]fetch{{2, 5, 10, 0, false}, {3, 7, 10, 5, true}, {2, 10, 10, 7, true}, {3, 3, 10, 7, false}, {3, 10, 10, 10, true}}},
		{"the leader's own end bounds it",
			LeaderConfig{LocalID: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}, LogEndOffset: 4},
			[]fetch{{2, 4, 4, 4, true}, {2, 9, 9, 9, true}}},
		{"followers outside the ISR are ignored",
			LeaderConfig{LocalID: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}, LogEndOffset: 10},
			[]fetch{{3, 0, 10, 0, false}, {2, 10, 10, 10, true}}},
		{"election high watermark is kept until the ISR passes it",
			LeaderConfig{LocalID: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}, LogEndOffset: 10, HighWatermark: 8},
			[]fetch{{2, 6, 10, 8, false}, {2, 9, 10, 9, true}}},
		{"unknown replicas are ignored",
			LeaderConfig{LocalID: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}, LogEndOffset: 10},
			[]fetch{{7, 10, 10, 0, false}, {1, 10, 10, 0, false}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLeaderState(tc.cfg)
			for i, f := range tc.fetches {
				changed := l.UpdateFollower(f.replica, f.fetchOffset, f.leaderLEO, 1000)
				if hw := l.HighWatermark(); hw != f.wantHW || changed != f.wantChanged {
					t.Fatalf("fetch %d %+v: hw %d changed %v", i, f, hw, changed)
				}
			}
		})
	}

	// An ISR of one follows the leader's end; a shrink lets the high watermark move.
	l := NewLeaderState(LeaderConfig{LocalID: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1}})
	if !l.SetLocalLEO(5) || l.HighWatermark() != 5 {
		t.Fatalf("ISR of one: hw %d", l.HighWatermark())
	}
	l.SetISR([]int32{1, 2, 3})
	l.SetLocalLEO(12)
	l.UpdateFollower(2, 12, 12, 0)
	if l.HighWatermark() != 5 {
		t.Fatalf("follower 3 has not fetched: hw %d, want 5", l.HighWatermark())
	}
	if !l.SetISR([]int32{1, 2}) || l.HighWatermark() != 12 {
		t.Fatalf("after shrink: hw %d, want 12", l.HighWatermark())
	}
	if got := fmt.Sprint(l.ISR(), l.Replicas()); got != "[1 2] [1 2 3]" {
		t.Fatalf("ISR, replicas: %s", got)
	}
	if !l.IsReplica(3) || l.IsReplica(1) || l.IsReplica(4) {
		t.Fatal("IsReplica")
	}
}

// TestLeaderStateShrinkCandidates: Kafka's getOutOfSyncReplicas with replica.lag.time.max.ms.
func TestLeaderStateShrinkCandidates(t *testing.T) {
	const lag = 100
	cases := []struct {
		name     string
		fetches  [][3]int64 // follower 2's fetches: fetch offset, leader end, time
		finalLEO int64      // the leader's end when asked
		now      int64
		want     string
	}{
		{"caught up at election, within the lag", nil, 10, 50, "[]"},
		{"no fetch since election, past the lag", nil, 10, 150, "[2]"},
		{"behind now, caught up within the lag", [][3]int64{{10, 10, 90}}, 15, 150, "[]"},
		{"behind for longer than the lag", [][3]int64{{5, 10, 40}, {7, 12, 140}}, 12, 150, "[2]"},
		{"at the leader's end, however long ago", [][3]int64{{10, 10, 0}}, 10, 1000, "[]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLeaderState(LeaderConfig{LocalID: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}, LogEndOffset: 10, NowMs: 0})
			for _, f := range tc.fetches {
				l.UpdateFollower(2, f[0], f[1], f[2])
			}
			l.SetLocalLEO(tc.finalLEO)
			if got := fmt.Sprint(l.ShrinkCandidates(tc.now, lag)); got != tc.want {
				t.Fatalf("ShrinkCandidates = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestLeaderStateExpandCandidates: Kafka's isFollowerInSync — outside the ISR, log end offset
// >= the high watermark and >= this leader epoch's start offset.
func TestLeaderStateExpandCandidates(t *testing.T) {
	cases := []struct {
		name        string
		fetchOffset int64 // follower 3's (outside the ISR); -1: has not fetched
		hw          int64
		epochStart  int64
		want        string
	}{
		{"caught up to the high watermark and the epoch start", 10, 10, 5, "[3]"},
		{"below the high watermark", 9, 10, 5, "[]"},
		{"past the high watermark, before the epoch start", 10, 8, 12, "[]"},
		{"has not fetched", -1, 0, 0, "[]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLeaderState(LeaderConfig{LocalID: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}, LogEndOffset: 20, EpochStartOffset: tc.epochStart})
			l.UpdateFollower(2, 20, 20, 0) // in the ISR already: never a candidate
			if tc.fetchOffset >= 0 {
				l.UpdateFollower(3, tc.fetchOffset, 20, 0)
			}
			if got := fmt.Sprint(l.ExpandCandidates(tc.hw)); got != tc.want {
				t.Fatalf("ExpandCandidates(%d) = %s, want %s", tc.hw, got, tc.want)
			}
		})
	}
}
