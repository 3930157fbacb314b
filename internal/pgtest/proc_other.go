//go:build !linux

package pgtest

import "os/exec"

func setProcAttr(*exec.Cmd) {}

func interrupt(c *exec.Cmd) { _ = c.Process.Kill() }

func kill(c *exec.Cmd) { _ = c.Process.Kill() }
