package bench

import (
	"os/exec"
	"strings"
	"testing"
)

// DESIGN.md: bench is a Kafka client and knows nothing of Spate. Neither it nor the
// spate-bench binary may depend on another spate package (only tests start a broker, through
// bench/spatetest).
func TestNoSpateImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".", "./report", "../cmd/spate-bench").CombinedOutput()
	if err != nil {
		t.Skipf("go list: %v: %s", err, out)
	}
	allowed := map[string]bool{
		"github.com/spate-broker/spate/bench":           true,
		"github.com/spate-broker/spate/bench/report":    true,
		"github.com/spate-broker/spate/cmd/spate-bench": true,
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/spate-broker/spate/") && !allowed[dep] {
			t.Errorf("bench depends on %s", dep)
		}
	}
}
