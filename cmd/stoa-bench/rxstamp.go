package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/pion/transport/v5"
)

// Kernel receive times of the subscribers' RTP.
//
// A subscriber's read loop sees a packet after pion's receive path: a
// recvmsg on the ICE candidate's goroutine, then hand-offs to the DTLS/SRTP
// mux, the SRTP session and the track's buffer. With a hundred subscribers
// those goroutines queue behind each other for milliseconds, so the delay to
// the read measures the generator more than the server. The kernel stamps a
// datagram (SO_TIMESTAMPNS) when it reaches the subscriber's socket, which
// on loopback is inside the server's own sendmsg; SRTP leaves the RTP header
// in clear, so the socket can file that time under (SSRC, sequence number)
// before pion sees the packet, and the read loop looks it up.

// rxSlots is the size of one participant's table, a power of two: about 4 s
// of a meeting subscriber's ~530 packets/s, where a packet normally waits
// milliseconds to be read. When the generator falls further behind, lookups
// miss and the report says how many.
const rxSlots = 2048

// rxBuffer is the receive buffer asked for each subscriber socket. The
// kernel charges each loopback datagram about 2 KB and doubles the figure
// for its bookkeeping, so this holds several seconds of a webinar
// subscriber's 290 packets/s: the generator's reads may lag, but it should
// never drop.
const rxBuffer = 4 << 20

// rxValid marks a used slot: no key is 0, so 0 means "being written".
const rxValid = 1 << 63

// rxTable maps (SSRC, sequence number) to the kernel receive time of the
// datagram that carried it. One goroutine records (the socket's reader,
// pion's ICE candidate loop); any number may look up, without locks.
// Slots are reused whether or not they were read: a lookup for an
// overwritten packet misses.
type rxTable struct {
	drops atomic.Uint32 // datagrams the socket dropped for want of buffer (SO_RXQ_OVFL), cumulative
	slots [rxSlots]rxSlot
}

// rxSlot is one entry. record writes key 0, then at, then key; lookup reads
// key, at and key again, and trusts at only if both keys are the one it
// wants, so a lookup racing a record misses instead of taking another
// packet's time.
type rxSlot struct {
	key atomic.Uint64 // rxValid | ssrc<<16 | seq; 0 while being written
	at  atomic.Int64  // kernel receive time, Unix nanoseconds
}

// rxIndex places a stream's consecutive sequence numbers in consecutive
// slots, from a start that depends on the SSRC, so a stream never
// overwrites its own recent packets and streams rarely overwrite each
// other's.
func rxIndex(ssrc uint32, seq uint16) int {
	return int((ssrc*0x9e3779b1)>>16+uint32(seq)) & (rxSlots - 1)
}

func rxKey(ssrc uint32, seq uint16) uint64 {
	return rxValid | uint64(ssrc)<<16 | uint64(seq)
}

// record files at under (ssrc, seq). Only the table's one writer may call it.
func (t *rxTable) record(ssrc uint32, seq uint16, at int64) {
	s := &t.slots[rxIndex(ssrc, seq)]
	s.key.Store(0)
	s.at.Store(at)
	s.key.Store(rxKey(ssrc, seq))
}

// lookup returns the kernel receive time of (ssrc, seq), if the table still
// holds it. Safe from any goroutine.
func (t *rxTable) lookup(ssrc uint32, seq uint16) (int64, bool) {
	s := &t.slots[rxIndex(ssrc, seq)]
	k := rxKey(ssrc, seq)
	if s.key.Load() != k {
		return 0, false
	}
	at := s.at.Load()
	if s.key.Load() != k {
		return 0, false
	}
	return at, true
}

// rtpKey returns the SSRC and sequence number of b if it is an RTP packet.
// A first byte in 128..191 is RTP or RTCP (RFC 7983 §7, the demultiplexing
// of STUN, DTLS and SRTP on one port); RTCP packet types 192..223 look like
// RTP payload types 64..95 with the marker bit, which RTP avoids for that
// reason (RFC 5761 §4).
func rtpKey(b []byte) (ssrc uint32, seq uint16, ok bool) {
	if len(b) < 12 || b[0] < 128 || b[0] > 191 {
		return 0, 0, false
	}
	if pt := b[1] & 0x7f; pt >= 64 && pt <= 95 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(b[8:12]), binary.BigEndian.Uint16(b[2:4]), true
}

// rxConn is a subscriber's UDP socket that records the kernel receive time
// of every RTP datagram it reads. It implements ice.AddrPortReaderWriter,
// which pion's ICE candidate prefers to ReadFrom. Reads must come from one
// goroutine at a time (pion's candidate loop): they share oob and are the
// table's one writer.
type rxConn struct {
	*net.UDPConn
	table *rxTable
	oob   [128]byte // control messages: a timestamp (32 bytes) and a drop count (24)
}

// ReadFromAddrPort reads one datagram and, if it is RTP and the kernel
// stamped it, records its receive time. It does not allocate.
func (c *rxConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	n, oobn, flags, addr, err := c.ReadMsgUDPAddrPort(b, c.oob[:])
	if err != nil {
		return n, addr, err
	}
	at, drops, ok := rxControl(c.oob[:oobn], flags)
	if drops > 0 {
		c.table.drops.Store(drops)
	}
	if ok {
		if ssrc, seq, isRTP := rtpKey(b[:n]); isRTP {
			c.table.record(ssrc, seq, at)
		}
	}
	return n, addr, nil
}

// WriteToAddrPort completes ice.AddrPortReaderWriter.
func (c *rxConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	return c.WriteToUDPAddrPort(b, addr)
}

// ReadFrom goes through ReadFromAddrPort, so no reader misses the
// recording.
func (c *rxConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.ReadFromAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(addr), nil
}

// rxNet is the transport.Net of one participant's subscriber
// PeerConnection: pion's own, except that ListenUDP returns an rxConn
// recording into table. The loopback-only IP filter gives a PeerConnection
// one socket; should ICE ever open a second, it gets a plain one, so that
// the table keeps one writer (its packets then miss and are counted).
type rxNet struct {
	transport.Net
	table *rxTable
	// unavailable is called, from pion's gathering goroutine, when the
	// socket cannot be set up for timestamps; the socket is then plain.
	unavailable func(error)
	used        atomic.Bool
}

func (n *rxNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil || n.used.Swap(true) {
		return c, err
	}
	udp, ok := c.(*net.UDPConn)
	if !ok {
		n.unavailable(fmt.Errorf("pion's socket is a %T", c))
		return c, nil
	}
	if err := setupRxSocket(udp); err != nil {
		n.unavailable(err)
		return c, nil
	}
	return &rxConn{UDPConn: udp, table: n.table}, nil
}
