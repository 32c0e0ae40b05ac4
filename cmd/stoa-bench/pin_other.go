//go:build !linux

package main

import (
	"errors"
	"os/exec"
)

var errNoPinning = errors.New("CPU pinning is implemented for Linux only")

func allowedCPUs() ([]int, error) { return nil, errNoPinning }

func pinSelf([]int) error { return errNoPinning }

func startOn(cmd *exec.Cmd, _, _ []int) error { return cmd.Start() }
