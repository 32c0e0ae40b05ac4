package sfu

import (
	"sync"
)

// History sizes, in packets. A NACK is useful for about one round trip plus
// the receiver's jitter buffer (a few hundred ms); libwebrtc stops asking
// for a packet after about a second. At the top simulcast layer of 2 Mbit/s
// (about 240 packets/s) 512 packets are two seconds; Opus at 50 packets/s
// fills 128 in 2.5 s.
const (
	videoHistory = 512
	audioHistory = 128
)

// history keeps the most recent packets of one received stream, as
// received, so that any subscriber's NACK can be answered from it: one copy
// per publisher's layer, not one per subscriber (galene's packetcache does
// the same). Slots are indexed by sequence number, so a lookup is one
// index and one comparison.
//
// add is called by the layer's read loop; get by subscribers' RTCP loops.
type history struct {
	mu    sync.Mutex // guards the following fields
	mask  uint16
	slots []historySlot
}

type historySlot struct {
	seq uint16
	n   uint16 // packet length; 0 for an empty slot
	buf [receiveMTU]byte
}

// newHistory makes a history of size packets, a power of two.
func newHistory(size int) *history {
	return &history{mask: uint16(size - 1), slots: make([]historySlot, size)}
}

// add stores pkt, a whole RTP packet with sequence number seq, replacing
// the packet it shares a slot with.
func (h *history) add(seq uint16, pkt []byte) {
	if len(pkt) > receiveMTU {
		return
	}
	h.mu.Lock()
	s := &h.slots[seq&h.mask]
	s.seq = seq
	s.n = uint16(copy(s.buf[:], pkt))
	h.mu.Unlock()
}

// get copies the packet with sequence number seq into dst and returns its
// length, or 0 if it is no longer (or never was) kept.
func (h *history) get(seq uint16, dst []byte) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := &h.slots[seq&h.mask]
	if s.n == 0 || s.seq != seq {
		return 0
	}
	return copy(dst, s.buf[:s.n])
}
