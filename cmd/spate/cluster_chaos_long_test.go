//go:build chaos && linux

package main

// The long cluster fault suite (`make chaos`): go test -tags chaos -run TestClusterChaosLong.

import (
	"os"
	"testing"
	"time"
)

// TestClusterChaosLong: faults picked by the seed, one after the other with 1-5 s between
// them, for SPATE_CHAOS_DURATION (default 10m); then the checks of TestClusterChaosShort
// (cluster_chaos_test.go).
func TestClusterChaosLong(t *testing.T) {
	d := 10 * time.Minute
	if s := os.Getenv("SPATE_CHAOS_DURATION"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("SPATE_CHAOS_DURATION: %v", err)
		}
		d = v
	}
	c := startChaosCluster(t)
	t.Logf("faults for %v", d)
	until := time.Now().Add(d)
	c.run(func(k int) (chaosFault, bool) {
		if time.Now().After(until) {
			return chaosFault{}, false
		}
		if k > 0 {
			c.sleep(time.Second, 5*time.Second)
		}
		return chaosFaults[c.rng.IntN(len(chaosFaults))], true
	})
}
