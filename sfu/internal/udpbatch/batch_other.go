//go:build !linux

package udpbatch

import (
	"net"
	"net/netip"
)

// Without sendmmsg there is nothing to gather: Begin and End do nothing and
// every write goes straight to the socket.

type batch struct{ n int }

func newBatch() *batch { return &batch{} }

func (b *batch) add(p []byte, addr netip.AddrPort, family int) bool { return false }

type noSender struct{}

type sender = *noSender

func newSender(*net.UDPConn) sender { return nil }

func (*noSender) family() int { return 0 }

func (*noSender) close() {}

func (*noSender) writeTo([]byte, netip.AddrPort) bool { return false }

func (*noSender) readFrom([]byte) (int, netip.AddrPort, error) {
	return 0, netip.AddrPort{}, net.ErrClosed
}

func (*noSender) send(b *batch) (sent, dropped int) { return 0, b.n }
