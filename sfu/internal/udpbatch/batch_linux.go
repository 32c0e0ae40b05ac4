package udpbatch

import (
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batch is a sendmmsg argument built in place: the headers point into the
// batch's own iovecs, addresses and buffers, so filling a slot copies the
// packet and its address and nothing else.
type batch struct {
	n     int
	msgs  [batchSize]unix.Mmsghdr
	iovs  [batchSize]unix.Iovec
	addrs [batchSize]unix.RawSockaddrInet6 // large enough for an AF_INET address too
	bufs  [batchSize][slotSize]byte
}

func newBatch() *batch {
	b := &batch{}
	for i := range b.msgs {
		b.iovs[i].Base = &b.bufs[i][0]
		b.msgs[i].Hdr.Iov = &b.iovs[i]
		b.msgs[i].Hdr.Iovlen = 1
		b.msgs[i].Hdr.Name = (*byte)(unsafe.Pointer(&b.addrs[i]))
	}
	return b
}

// add copies p and addr into the next slot. It reports false, adding
// nothing, if a socket of family cannot send to addr (IPv6 on an IPv4
// socket). The caller checks there is room and that p fits a slot.
func (b *batch) add(p []byte, addr netip.AddrPort, family int) bool {
	i := b.n
	ip := addr.Addr()
	sa := &b.addrs[i]
	switch {
	case family == unix.AF_INET6:
		*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: ip.As16()}
		if ip.Is6() {
			sa.Scope_id = zoneIndex(ip.Zone())
		}
		putPort(&sa.Port, addr.Port())
		b.msgs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
	case ip.Unmap().Is4():
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ip.Unmap().As4()}
		putPort(&sa4.Port, addr.Port())
		b.msgs[i].Hdr.Namelen = unix.SizeofSockaddrInet4
	default:
		return false
	}
	b.iovs[i].SetLen(copy(b.bufs[i][:], p))
	b.n++
	return true
}

// putPort stores port in network byte order in a sockaddr's port field.
func putPort(field *uint16, port uint16) {
	p := (*[2]byte)(unsafe.Pointer(field))
	p[0], p[1] = byte(port>>8), byte(port)
}

func zoneIndex(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	return 0
}

type mmsgSender struct {
	raw syscall.RawConn
	fam int
}

// sender sends a batch. nil means the platform cannot batch.
type sender = *mmsgSender

func newSender(c *net.UDPConn) sender {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	fam := -1
	_ = raw.Control(func(fd uintptr) {
		if sa, err := unix.Getsockname(int(fd)); err == nil {
			switch sa.(type) {
			case *unix.SockaddrInet4:
				fam = unix.AF_INET
			case *unix.SockaddrInet6:
				fam = unix.AF_INET6
			}
		}
	})
	if fam < 0 {
		return nil
	}
	return &mmsgSender{raw: raw, fam: fam}
}

func (s *mmsgSender) family() int { return s.fam }

// send writes every packet of b, waiting while the socket buffer is full.
// A packet the kernel refuses (an unreachable address, say) is dropped and
// the rest still go. It returns the packets sent and dropped.
func (s *mmsgSender) send(b *batch) (sent, dropped int) {
	i := 0
	for i < b.n {
		var r uintptr
		var errno syscall.Errno
		err := s.raw.Write(func(fd uintptr) bool {
			r, _, errno = unix.Syscall6(unix.SYS_SENDMMSG, fd,
				uintptr(unsafe.Pointer(&b.msgs[i])), uintptr(b.n-i), 0, 0, 0)
			return errno != unix.EAGAIN
		})
		switch {
		case err != nil: // the socket is closed
			return sent, dropped + b.n - i
		case errno == unix.EINTR:
		case errno != 0: // sendmmsg fails only for its first message
			i++
			dropped++
		default:
			i += int(r)
			sent += int(r)
		}
	}
	return sent, dropped
}
