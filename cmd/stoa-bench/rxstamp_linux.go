package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// setupRxSocket asks the kernel to stamp every datagram c receives
// (SO_TIMESTAMPNS: CLOCK_REALTIME, the clock the publishers stamp with) and
// to report its drop count (SO_RXQ_OVFL), and gives c rxBuffer of receive
// buffer: SO_RCVBUFFORCE when allowed (root), else SO_RCVBUF, which the
// kernel caps at net.core.rmem_max.
func setupRxSocket(c *net.UDPConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		s := int(fd)
		if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			serr = fmt.Errorf("SO_TIMESTAMPNS: %w", err)
			return
		}
		// The drop count only explains loss; the figures do not need it.
		_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1)
		if unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rxBuffer) != nil {
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, rxBuffer)
		}
	})
	return errors.Join(err, serr)
}

// rxControl reads the control messages of one datagram: the kernel's
// receive time in Unix nanoseconds (ok says whether there was one) and the
// socket's cumulative drop count (0 if absent). A truncated control buffer
// is not trusted.
func rxControl(oob []byte, flags int) (at int64, drops uint32, ok bool) {
	if flags&unix.MSG_CTRUNC != 0 {
		return 0, 0, false
	}
	for len(oob) >= unix.SizeofCmsghdr {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			break
		}
		oob = rest
		if h.Level != unix.SOL_SOCKET {
			continue
		}
		switch {
		case h.Type == unix.SCM_TIMESTAMPNS && len(data) >= 16:
			// struct timespec of 64-bit seconds and nanoseconds.
			sec := int64(binary.NativeEndian.Uint64(data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(data[8:16]))
			at, ok = sec*1e9+nsec, true
		case h.Type == unix.SO_RXQ_OVFL && len(data) >= 4:
			drops = binary.NativeEndian.Uint32(data)
		}
	}
	return at, drops, ok
}
