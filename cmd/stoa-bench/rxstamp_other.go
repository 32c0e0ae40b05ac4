//go:build !linux

package main

import (
	"errors"
	"net"
)

// setupRxSocket fails: kernel receive timestamps are read the Linux way
// only, and the generator then measures delay to its own read.
func setupRxSocket(*net.UDPConn) error {
	return errors.New("kernel receive timestamps are implemented for Linux only")
}

func rxControl([]byte, int) (int64, uint32, bool) { return 0, 0, false }
