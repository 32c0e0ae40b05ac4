package sfu

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/stoa-rtc/stoa/sfu/internal/udpbatch"
)

// SFU owns the media plane: the shared ICE sockets and the webrtc.API every
// Peer is built from. Create it with New and release it with Close.
type SFU struct {
	cfg     Config
	log     *slog.Logger
	udpConn *udpbatch.Conn
	tcpLn   net.Listener
	udpMux  ice.UDPMux
	tcpMux  ice.TCPMux

	// What each Peer's own API is built from (see NewPeer).
	se       webrtc.SettingEngine
	me       *webrtc.MediaEngine
	tcpConns tcpConns

	rmu       sync.RWMutex             // guards the following fields
	receivers map[netip.AddrPort]*Peer // publishers on the own receive path, by address
}

// New binds the ICE UDP (and, unless disabled, TCP) ports and prepares the
// codecs and interceptors that every Peer uses.
func New(cfg Config) (*SFU, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &SFU{cfg: cfg, log: log}
	lf := newLoggerFactory(log)

	pc, err := net.ListenPacket("udp", net.JoinHostPort(cfg.BindIP, strconv.Itoa(cfg.UDPPort)))
	if err != nil {
		return nil, fmt.Errorf("sfu: listen ICE UDP: %w", err)
	}
	// Every peer's media leaves through this one socket; publishers' read
	// loops gather each packet's fan-out into one sendmmsg (udpbatch).
	udpConn := udpbatch.New(pc.(*net.UDPConn))
	s.udpConn = udpConn
	s.udpMux = ice.NewUDPMuxDefault(ice.UDPMuxParams{Logger: lf.NewLogger("udpmux"), UDPConn: udpConn})

	se := webrtc.SettingEngine{LoggerFactory: lf}
	// Answer as the DTLS server, as the SFU is when it offers (clients
	// answer active): the own write path needs the server's side of the
	// handshake (srtpout.go). RFC 8842 §5.2 lets the answerer take either
	// role.
	if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleServer); err != nil {
		s.Close()
		return nil, err
	}
	se.SetICEUDPMux(s.udpMux)
	networks := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if cfg.TCPPort >= 0 {
		ln, err := net.Listen("tcp", net.JoinHostPort(cfg.BindIP, strconv.Itoa(cfg.TCPPort)))
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("sfu: listen ICE TCP: %w", err)
		}
		s.tcpLn = ln
		s.tcpMux = webrtc.NewICETCPMux(lf.NewLogger("tcpmux"), deadlineListener{ln, &s.tcpConns}, 32)
		se.SetICETCPMux(s.tcpMux)
		networks = append(networks, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	se.SetNetworkTypes(networks)
	// The SFU only accepts ICE-TCP; it never dials the addresses a client
	// names in its candidates (that would let clients make it connect
	// anywhere).
	se.DisableActiveTCP(true)
	se.SetIncludeLoopbackCandidate(cfg.IncludeLoopback)
	// Clients behind mDNS-obfuscated host candidates reach us as
	// peer-reflexive candidates; we never multicast queries ourselves.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if len(cfg.NodeIPs) > 0 {
		se.SetNAT1To1IPs(cfg.NodeIPs, webrtc.ICECandidateTypeHost)
	}
	if cfg.BindIP != "" {
		bind := net.ParseIP(cfg.BindIP)
		if bind != nil && !bind.IsUnspecified() {
			se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(bind) })
		}
	}
	// Browsers may renegotiate often; keep the data channels' SCTP usable
	// for LiveKit's 64 KB packets (PROTOCOL.md §5.6).
	se.SetSCTPMaxMessageSize(65536)

	me := &webrtc.MediaEngine{}
	if err := registerCodecs(me); err != nil {
		s.Close()
		return nil, err
	}
	if err := registerFeedback(me); err != nil {
		s.Close()
		return nil, err
	}
	s.se, s.me = se, me
	udpConn.SetReceiver(s.receive)
	log.Info("media plane listening", "udp", udpConn.LocalAddr().String(), "tcp", s.TCPAddr())
	return s, nil
}

// UDPAddr is the address of the ICE UDP mux.
func (s *SFU) UDPAddr() net.Addr { return s.udpConn.LocalAddr() }

// TCPAddr is the address of the ICE-TCP listener, or "" when disabled.
func (s *SFU) TCPAddr() string {
	if s.tcpLn == nil {
		return ""
	}
	return s.tcpLn.Addr().String()
}

// Close releases the ICE sockets. Peers must be closed first.
func (s *SFU) Close() error {
	var first error
	if s.udpMux != nil {
		first = s.udpMux.Close()
	} else if s.udpConn != nil {
		first = s.udpConn.Close()
	}
	if s.tcpMux != nil {
		if err := s.tcpMux.Close(); err != nil && first == nil {
			first = err
		}
	} else if s.tcpLn != nil {
		if err := s.tcpLn.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// tcpWriteTimeout bounds one write to an ICE-TCP connection. Packets are
// written from publishers' read loops: a subscriber that stops reading its
// TCP socket must not stall everyone else for longer than this; its
// connection fails instead.
const tcpWriteTimeout = 250 * time.Millisecond

// deadlineListener gives every accepted ICE-TCP connection a write
// timeout, and keeps the connections by remote address for the own write
// path (srtpOut).
type deadlineListener struct {
	net.Listener
	conns *tcpConns
}

func (l deadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &tcpConn{Conn: c, conns: l.conns}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		tc.remote = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		l.conns.add(tc)
	}
	return tc, nil
}

// tcpConn is one accepted ICE-TCP connection. pion writes one RFC 4571
// frame per Write, and so does srtpOut; the runtime holds a connection's
// write lock for a whole Write, so their frames never interleave.
type tcpConn struct {
	net.Conn
	remote netip.AddrPort
	conns  *tcpConns
}

func (c *tcpConn) Write(b []byte) (int, error) {
	if err := c.SetWriteDeadline(time.Now().Add(tcpWriteTimeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

func (c *tcpConn) Close() error {
	c.conns.remove(c)
	return c.Conn.Close()
}

// tcpConns are the open ICE-TCP connections by remote address.
type tcpConns struct {
	mu sync.Mutex // guards the following fields
	m  map[netip.AddrPort]*tcpConn
}

func (t *tcpConns) add(c *tcpConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[netip.AddrPort]*tcpConn{}
	}
	t.m[c.remote] = c
}

func (t *tcpConns) remove(c *tcpConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m[c.remote] == c {
		delete(t.m, c.remote)
	}
}

func (t *tcpConns) find(addr netip.AddrPort) *tcpConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[addr]
}
