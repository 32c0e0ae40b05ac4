package main

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// waitQueued returns the time by which c has a datagram waiting (SIOCINQ),
// polling for at most 5 s.
func waitQueued(t *testing.T, c *net.UDPConn) int64 {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Microsecond) {
		n := 0
		_ = raw.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
		if n > 0 {
			return time.Now().UnixNano()
		}
	}
	t.Fatal("datagram not queued within 5 s")
	return 0
}
