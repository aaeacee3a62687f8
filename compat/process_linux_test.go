package compat

import (
	"os/exec"
	"syscall"
)

// setPdeathsig has the broker killed when the test binary dies.
func setPdeathsig(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
