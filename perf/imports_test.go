package perf

import (
	"os/exec"
	"strings"
	"testing"
)

// DESIGN.md: nothing imports perf, and perf measures brokers from outside, as processes: it
// may use the load generator (bench) but none of Spate's own packages.
func TestNoSpateImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".", "./cmd/...").CombinedOutput()
	if err != nil {
		t.Skipf("go list: %v: %s", err, out)
	}
	allowed := map[string]bool{
		"github.com/spate-broker/spate/bench":               true,
		"github.com/spate-broker/spate/bench/report":        true,
		"github.com/spate-broker/spate/perf":                true,
		"github.com/spate-broker/spate/perf/cmd/spate-perf": true,
		"github.com/spate-broker/spate/perf/cmd/perf-kfake": true,
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/spate-broker/spate/") && !allowed[dep] {
			t.Errorf("perf depends on %s", dep)
		}
	}
}
