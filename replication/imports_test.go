package replication

import (
	"os/exec"
	"strings"
	"testing"
)

// DESIGN.md: imports point down. replication sits above logstore and below broker: it must
// not depend on the broker, the controller, the coordinator or the network server.
func TestImportsPointDown(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Skipf("go list: %v: %s", err, out)
	}
	allowed := map[string]bool{
		"github.com/spate-broker/spate/replication":     true,
		"github.com/spate-broker/spate/logstore":        true,
		"github.com/spate-broker/spate/index":           true,
		"github.com/spate-broker/spate/internal/mmfile": true,
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/spate-broker/spate/") && !allowed[dep] {
			t.Errorf("replication depends on %s", dep)
		}
	}
}
