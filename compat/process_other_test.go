//go:build !linux

package compat

import "os/exec"

func setPdeathsig(*exec.Cmd) {}
