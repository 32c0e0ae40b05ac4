package main

import (
	"encoding/binary"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// stream is one track a subscriber receives, and what it measured. The
// counters are written by the stream's read loop only and read by the
// reporter at any time; each is cumulative, and a measurement window is
// the difference of two snapshots.
type stream struct {
	packets    atomic.Uint64 // RTP packets received
	bytes      atomic.Uint64 // RTP bytes received (header and payload, after SRTP)
	unstamped  atomic.Uint64 // packets without a trailer: the SFU's padding or probes
	highSeq    atomic.Int64  // highest extended sequence number; -1 before the first packet
	firstSeq   atomic.Int64  // extended sequence number of the first packet
	rightLayer atomic.Uint64 // video packets of the layer this subscriber asked for
	wrongLayer atomic.Uint64 // video packets of another layer
	switches   atomic.Uint64 // times the forwarded publisher/layer changed, the first packet included
	badSwitch  atomic.Uint64 // of those, changes that did not start at a keyframe
	noRxTime   atomic.Uint64 // stamped packets whose kernel receive time was not found

	delay     histogram // send to kernel receive on the subscriber's socket, stamped packets with a receive time
	readDelay histogram // send to this loop's read: includes the generator's receive path

	video bool
}

func newStream(video bool) *stream {
	s := &stream{video: video}
	s.highSeq.Store(-1)
	return s
}

// readLoop reads remote until it ends. rx holds the kernel receive times of
// the participant's subscriber socket. want maps a publisher index to the
// layer the subscriber asked for; onFirst is called with the publisher
// index of the first stamped packet, from this goroutine.
func (s *stream) readLoop(remote *webrtc.TrackRemote, rx *rxTable, want func(pub int) int, onFirst func(pub int)) {
	buf := make([]byte, 1500)
	high := int64(-1)
	lastPub, lastLayer := -1, -1
	for {
		n, _, err := remote.Read(buf)
		if err != nil {
			return
		}
		now := time.Now()
		if n < 12 {
			continue
		}
		pkt := buf[:n]
		payload, ok := rtpPayload(pkt)
		if !ok {
			continue
		}

		sn := binary.BigEndian.Uint16(pkt[2:4])
		if high < 0 {
			high = int64(sn)
			s.firstSeq.Store(high)
		} else if ext := high + int64(int16(sn-uint16(high))); ext > high {
			high = ext
		}
		s.highSeq.Store(high)
		s.packets.Add(1)
		s.bytes.Add(uint64(n))

		t, ok := parseTrailer(payload)
		if !ok {
			s.unstamped.Add(1)
			continue
		}
		s.readDelay.record(now.Sub(time.Unix(0, t.sent)))
		if at, ok := rx.lookup(binary.BigEndian.Uint32(pkt[8:12]), sn); ok {
			s.delay.record(time.Duration(at - t.sent))
		} else {
			s.noRxTime.Add(1)
		}
		if !s.video {
			if lastPub < 0 {
				lastPub = t.pub
				onFirst(t.pub)
			}
			continue
		}
		if int(t.layer) == want(t.pub) {
			s.rightLayer.Add(1)
		} else {
			s.wrongLayer.Add(1)
		}
		if t.pub != lastPub || int(t.layer) != lastLayer {
			if lastPub < 0 {
				onFirst(t.pub)
			}
			s.switches.Add(1)
			if t.flags&trailerKey == 0 {
				s.badSwitch.Add(1)
			}
			lastPub, lastLayer = t.pub, int(t.layer)
		}
	}
}

// rtpPayload returns the payload of an RTP packet without its padding.
func rtpPayload(pkt []byte) ([]byte, bool) {
	if len(pkt) < 12 || pkt[0]>>6 != 2 {
		return nil, false
	}
	off := 12 + 4*int(pkt[0]&0x0f)
	if pkt[0]&0x10 != 0 {
		if len(pkt) < off+4 {
			return nil, false
		}
		off += 4 + 4*int(binary.BigEndian.Uint16(pkt[off+2:]))
	}
	end := len(pkt)
	if pkt[0]&0x20 != 0 && end > off {
		end -= int(pkt[end-1])
	}
	if off > end {
		return nil, false
	}
	return pkt[off:end], true
}

// streamSnap is a stream's counters at one instant.
type streamSnap struct {
	packets, bytes, unstamped uint64
	right, wrong              uint64
	switches, badSwitch       uint64
	noRxTime                  uint64
	high, first               int64
	started                   bool
}

func (s *stream) snap() streamSnap {
	high := s.highSeq.Load()
	return streamSnap{
		packets: s.packets.Load(), bytes: s.bytes.Load(), unstamped: s.unstamped.Load(),
		right: s.rightLayer.Load(), wrong: s.wrongLayer.Load(),
		switches: s.switches.Load(), badSwitch: s.badSwitch.Load(), noRxTime: s.noRxTime.Load(),
		high: high, first: s.firstSeq.Load(), started: high >= 0,
	}
}

// lost is the number of packets missing between two snapshots: sequence
// numbers the SFU sent (it numbers its output contiguously) that never
// arrived.
func lost(a, b streamSnap) int64 {
	if !b.started {
		return 0
	}
	var expected int64
	if a.started {
		expected = b.high - a.high
	} else {
		expected = b.high - b.first + 1
	}
	got := int64(b.packets - a.packets)
	return max(expected-got, 0)
}
