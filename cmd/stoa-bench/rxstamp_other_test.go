//go:build !linux

package main

import (
	"net"
	"testing"
)

// waitQueued is Linux-only, as the test that calls it.
func waitQueued(t *testing.T, _ *net.UDPConn) int64 {
	t.Skip("SIOCINQ is read on Linux only")
	return 0
}
