package udpbatch

import (
	"net"
	"net/netip"
	"os"
	"sync"
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
	fd  uintptr
	fam int

	mu     sync.RWMutex // held for reading while fd is used, for writing by close
	closed bool

	// One read at a time (pion has one reader); its arguments and results
	// live here so that the function handed to the poller is made once.
	rmu    sync.Mutex
	readFn func(fd uintptr) bool
	rbuf   []byte
	rn     int
	rfrom  unix.RawSockaddrInet6
	rerr   syscall.Errno

	wmu sync.Mutex // guards one, a batch of one for writes outside Begin/End
	one *batch
}

// sender sends a batch. nil means the platform cannot batch.
type sender = *mmsgSender

func newSender(c *net.UDPConn) sender {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	fam := -1
	var sock uintptr
	_ = raw.Control(func(fd uintptr) {
		sock = fd
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
	s := &mmsgSender{raw: raw, fd: sock, fam: fam, one: newBatch()}
	s.readFn = s.recvfrom
	return s
}

// close makes send stop using the descriptor; call it before the socket
// is closed, so that a number the kernel reuses is never written to.
func (s *mmsgSender) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

func (s *mmsgSender) family() int { return s.fam }

// The socket's hot system calls are made raw, without telling the Go
// scheduler: they never block (the socket is non-blocking, and when it
// would block the runtime's poller waits instead), they are short or, for
// a batch, CPU work in the kernel. A scheduled system call costs more than
// its bookkeeping on a server that idles between packets: entering one
// wakes the runtime's sysmon thread from its deep sleep, and sysmon then
// polls every 20 µs for a millisecond; a batch that keeps the kernel busy
// for longer than 20 µs gets its P handed to another thread. Measured on
// the meeting shape, sysmon alone took a sixth of Stoa's CPU.

// readFrom receives one datagram into b.
func (s *mmsgSender) readFrom(b []byte) (int, netip.AddrPort, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.rbuf = b
	if err := s.raw.Read(s.readFn); err != nil {
		return 0, netip.AddrPort{}, err
	}
	if s.rerr != 0 {
		return 0, netip.AddrPort{}, &net.OpError{Op: "read", Net: "udp", Err: os.NewSyscallError("recvfrom", s.rerr)}
	}
	return s.rn, sockaddrToAddrPort(&s.rfrom), nil
}

// recvfrom is the poller's read function: false means wait for data.
func (s *mmsgSender) recvfrom(fd uintptr) bool {
	var p unsafe.Pointer
	if len(s.rbuf) > 0 {
		p = unsafe.Pointer(&s.rbuf[0])
	}
	salen := uint32(unsafe.Sizeof(s.rfrom))
	for {
		r, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(p), uintptr(len(s.rbuf)), 0,
			uintptr(unsafe.Pointer(&s.rfrom)), uintptr(unsafe.Pointer(&salen)))
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		s.rn, s.rerr = int(r), errno
		return true
	}
}

// sockaddrToAddrPort converts a received address as the net package does:
// an AF_INET6 socket reports IPv4 peers as v4-mapped addresses.
func sockaddrToAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	port := (*[2]byte)(unsafe.Pointer(&sa.Port))
	p := uint16(port[0])<<8 | uint16(port[1])
	if sa.Family == unix.AF_INET {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), p)
	}
	return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), p)
}

// writeTo sends one datagram now. ok is false when the socket buffer is
// full or the address does not fit the socket: then the caller writes the
// ordinary way, which waits or reports the error.
func (s *mmsgSender) writeTo(b []byte, addr netip.AddrPort) (ok bool) {
	if len(b) > slotSize {
		return false
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	one := s.one
	one.n = 0
	if !one.add(b, addr, s.fam) {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return false
	}
	_, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, s.fd, uintptr(unsafe.Pointer(&one.msgs[0])), 1, 0, 0, 0)
	return errno == 0
}

// waitWritable parks until the socket has room, through the runtime's
// poller. It is apart from send so that send's variables stay on its stack.
func (s *mmsgSender) waitWritable() error {
	waited := false
	return s.raw.Write(func(uintptr) bool {
		if waited {
			return true
		}
		waited = true
		return false
	})
}

// send writes every packet of b, waiting while the socket buffer is full.
// A packet the kernel refuses (an unreachable address, say) is dropped and
// the rest still go. It returns the packets sent and dropped.
func (s *mmsgSender) send(b *batch) (sent, dropped int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, b.n
	}
	i := 0
	for i < b.n {
		r, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, s.fd,
			uintptr(unsafe.Pointer(&b.msgs[i])), uintptr(b.n-i), 0, 0, 0)
		if errno == unix.EAGAIN {
			// The socket buffer is full: wait for room like any writer.
			if err := s.waitWritable(); err != nil { // the socket is closed
				return sent, dropped + b.n - i
			}
			continue
		}
		switch {
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
