package rtpx

import (
	"bytes"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// seedPayloads returns the real packets of the table tests.
func seedPayloads() [][]byte {
	return [][]byte{
		vp8KeyframePacket(),
		vp8DeltaPacket(),
		vp8Packet(32767, 15, 255),
		vp8Packet(127, 7, 0),
		{0x10, 0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01},
		{0x90, 0x30, 0xe5, 0x31},
		{0xaa, 0x80, 0x01, 0x00, 0x05, 0x58, 0x01, 0x40, 0x00, 0xb4, 0x02, 0x80, 0x01, 0x68,
			0x05, 0x00, 0x02, 0xd0, 0x01, 0x04, 0x01, 0x82, 0x49, 0x83, 0x42, 0x00},
		{0xb8, 0x80, 0x01, 0x00, 0x82, 0x49},
		{0x78, 0x00, 0x0b, 0x67, 0x42, 0xc0, 0x1f, 0x8c, 0x8d, 0x40, 0x50, 0x1e, 0xd0, 0x0f,
			0x00, 0x04, 0x68, 0xce, 0x3c, 0x80, 0x00, 0x03, 0x65, 0x88, 0x84},
		{0x7c, 0x85, 0x88, 0x84, 0x00},
		{0x18, 0x08, 0x00, 0x00, 0x00, 0x24},
	}
}

// FuzzVP8Unmarshal checks Unmarshal against pion's VP8 depacketizer.
func FuzzVP8Unmarshal(f *testing.F) {
	for _, p := range seedPayloads() {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		orig := bytes.Clone(payload)
		var v VP8
		err := v.Unmarshal(payload)
		if !bytes.Equal(payload, orig) {
			t.Fatal("Unmarshal modified the payload")
		}
		if IsKeyframe(CodecVP8, payload) != (err == nil && v.IsKeyframe) {
			t.Fatal("IsKeyframe disagrees with Unmarshal")
		}

		var p codecs.VP8Packet
		rest, perr := p.Unmarshal(bytes.Clone(payload))
		// pion accepts a descriptor that leaves no VP8 payload; RFC 7741
		// packets always carry some, and Unmarshal rejects them.
		if perr != nil || len(rest) == 0 {
			if err == nil {
				t.Fatalf("Unmarshal(% x) = nil, pion: %v, %d bytes left", payload, perr, len(rest))
			}
			return
		}
		if err != nil {
			t.Fatalf("Unmarshal(% x) = %v, pion accepts it", payload, err)
		}
		want := VP8{
			HeaderLen: len(payload) - len(rest),
			S:         p.S == 1,
			N:         p.N == 1,
			PID:       p.PID,
		}
		if p.I == 1 {
			want.HasPictureID = true
			want.PictureID = p.PictureID
			want.PictureIDBits = 7
			if payload[2]&0x80 != 0 {
				want.PictureIDBits = 15
			}
		}
		if p.L == 1 {
			want.HasTL0PICIDX, want.TL0PICIDX = true, p.TL0PICIDX
		}
		if p.T == 1 {
			want.HasTID, want.TID, want.Y = true, p.TID, p.Y == 1
		}
		if p.K == 1 {
			want.HasKeyIdx, want.KeyIdx = true, p.KEYIDX
		}
		want.IsKeyframe = v.IsKeyframe
		if v != want {
			t.Fatalf("Unmarshal(% x)\n got %+v\nwant %+v", payload, v, want)
		}
		if v.IsKeyframe && (!v.S || v.PID != 0 || rest[0]&1 != 0) {
			t.Fatalf("Unmarshal(% x): keyframe without S, PID 0 and P=0", payload)
		}
	})
}

// FuzzIsKeyframe checks that IsKeyframe never panics or writes, for every
// codec and a few values out of range.
func FuzzIsKeyframe(f *testing.F) {
	for _, p := range seedPayloads() {
		for c := range CodecAV1 + 2 {
			f.Add(uint8(c), p)
		}
	}
	f.Fuzz(func(t *testing.T, codec uint8, payload []byte) {
		orig := bytes.Clone(payload)
		key := IsKeyframe(Codec(codec), payload)
		if !bytes.Equal(payload, orig) {
			t.Fatal("IsKeyframe modified the payload")
		}
		if key && len(payload) == 0 {
			t.Fatal("empty payload is a keyframe")
		}
		if key && Codec(codec) > CodecAV1 {
			t.Fatalf("unknown codec %d has a keyframe", codec)
		}
	})
}

// fuzzSource is one simulcast layer, sending on its own.
type fuzzSource struct {
	ssrc uint32
	sn   uint16 // last sent
	ts   uint32
	pid  uint16
	bits int
	tl0  uint8
}

func (s *fuzzSource) packet() (rtp.Header, []byte) {
	return rtp.Header{SSRC: s.ssrc, SequenceNumber: s.sn, Timestamp: s.ts},
		vp8Packet(s.pid, s.bits, s.tl0)
}

// fuzzOut is what the subscriber received for one packet.
type fuzzOut struct {
	in   rtp.Header
	pkt  []byte
	sn   uint16
	ts   uint32
	pid  uint16
	bits int
	tl0  uint8
}

// FuzzMunger drives a Munger and a VP8Munger as a downTrack would, with three
// layers and a sequence of operations decoded from the input, and checks the
// stream the subscriber sees: no gap and a later timestamp at a switch, SNs
// that follow the input one for one between switches, stable output for a
// retransmission, drops before the switch point and from other layers, and
// picture IDs that continue.
func FuzzMunger(f *testing.F) {
	// Three layers: SN, TS, picture ID (2 bytes each), width (odd: 7 bits)
	// and TL0PICIDX. Layer 0 is about to wrap all of them.
	layers := []byte{
		0xff, 0xfd, 0xff, 0xff, 0x7f, 0xfe, 0, 0xfe,
		0x00, 0x10, 0x12, 0x34, 0x00, 0x7d, 1, 0x00,
		0x80, 0x00, 0x00, 0x00, 0x12, 0x34, 0, 0x10,
	}
	// Operations: op, argument, milliseconds since the previous one.
	ops := []byte{
		0, 0, 0, // switch to layer 0
		1, 3, 33, 1, 0, 1, 1, 3, 33, // frames of layer 0
		3, 2, 1, 1, 1, 33, // loss, then the next packet
		4, 0, 1, 4, 2, 1, // retransmissions
		4, 5, 1, // a packet from before the switch point
		5, 1, 1, 5, 6, 2, // packets of the other layers
		0, 1, 40, 1, 3, 33, 1, 1, 33, 4, 1, 1, // layer 1, 7-bit IDs
		0, 2, 0, 2, 3, 33, // layer 2, no time elapsed
		0, 0, 200, 1, 1, 33, 5, 2, 1, // back to layer 0
	}
	f.Add(append(layers, ops...))
	f.Add(layers)
	f.Add([]byte{})
	f.Fuzz(fuzzMunger)
}

func fuzzMunger(t *testing.T, data []byte) {
	// About 250 operations are plenty to combine switches, losses and
	// retransmissions; longer inputs only make minimising them slow.
	if len(data) > 768 {
		data = data[:768]
	}
	i := 0
	next := func() byte {
		if i >= len(data) {
			return 0
		}
		i++
		return data[i-1]
	}
	next16 := func() uint16 { return uint16(next())<<8 | uint16(next()) }

	// Layers with unrelated SNs, timestamps and picture IDs, some 7 bits wide.
	var srcs [3]fuzzSource
	for k := range srcs {
		srcs[k] = fuzzSource{
			ssrc: uint32(k + 1),
			sn:   next16(),
			ts:   uint32(next16()) << 16,
			pid:  next16() & 0x7fff,
			bits: 15 - 8*int(next()&1),
			tl0:  next(),
		}
		srcs[k].pid &= uint16(1)<<srcs[k].bits - 1
	}

	var (
		m       Munger
		vm      VP8Munger
		buf     = make([]byte, 0, 1500)
		arrival int64
		cur     = -1
		sent    []fuzzOut // the last packets forwarded from cur since the switch
		first   fuzzOut   // the switch packet of cur
		last    fuzzOut   // the newest packet forwarded
		lastAt  int64
		lost    int // packets of cur lost since last
		since   int // input SNs from first to last
	)
	// Sequence numbers are only ordered within half their space, so the
	// harness keeps losses small and checks the switch point while it is
	// within reach.
	const maxLoss, reach = 100, 30000
	forward := func(s *fuzzSource) (fuzzOut, bool) {
		h, pkt := s.packet()
		orig := bytes.Clone(pkt)
		sn, ts, ok := m.Rewrite(&h, arrival)
		if !ok {
			return fuzzOut{}, false
		}
		var v VP8
		if err := v.Unmarshal(pkt); err != nil {
			t.Fatal(err)
		}
		out, err := vm.Rewrite(&v, pkt, buf)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pkt, orig) {
			t.Fatal("VP8Munger modified the shared payload")
		}
		var ov VP8
		if err := ov.Unmarshal(out); err != nil {
			t.Fatal(err)
		}
		want := v
		want.PictureID, want.TL0PICIDX = ov.PictureID, ov.TL0PICIDX
		if ov != want || !bytes.Equal(out[v.HeaderLen:], pkt[v.HeaderLen:]) {
			t.Fatalf("rewrite of % x changed more than the IDs: % x", pkt, out)
		}
		return fuzzOut{h, pkt, sn, ts, ov.PictureID, int(ov.PictureIDBits), ov.TL0PICIDX}, true
	}
	// advance moves a layer on by one packet, maybe of a new frame.
	advance := func(s *fuzzSource, newFrame, newTL0 bool) {
		s.sn++
		if newFrame {
			s.ts += 3000
			s.pid = (s.pid + 1) & (uint16(1)<<s.bits - 1)
			if newTL0 {
				s.tl0++
			}
		}
	}

	for i < len(data) {
		op, arg := next(), next()
		arrival += int64(next()) * ms
		switch op % 6 {
		case 0: // switch to layer arg%3, at its next packet
			k := int(arg % 3)
			s := &srcs[k]
			advance(s, true, true)
			h, _ := s.packet()
			m.Switch(&h, arrival, 90000)
			vm.Switch()
			o, ok := forward(s)
			if !ok {
				t.Fatalf("switch packet dropped")
			}
			if cur < 0 {
				if o.sn != s.sn || o.ts != s.ts || o.pid != s.pid || o.tl0 != s.tl0 {
					t.Fatalf("first packet rewritten: %+v", o)
				}
			} else {
				if o.sn != last.sn+1 {
					t.Fatalf("switch: SN %d after %d", o.sn, last.sn)
				}
				if d := o.ts - last.ts; d < 1 || d > maxTSJump {
					t.Fatalf("switch: TS %d after %d", o.ts, last.ts)
				}
				if want := tsAdvance(arrival-lastAt, 90000); o.ts-last.ts != want {
					t.Fatalf("switch: TS advanced %d, want %d", o.ts-last.ts, want)
				}
				if (o.pid-last.pid-1)&0x7f != 0 ||
					(o.bits == 15 && last.bits == 15 && o.pid != (last.pid+1)&0x7fff) {
					t.Fatalf("switch: picture ID %d after %d", o.pid, last.pid)
				}
				if o.tl0 != last.tl0+1 {
					t.Fatalf("switch: TL0PICIDX %d after %d", o.tl0, last.tl0)
				}
			}
			cur, sent, first, last, lastAt, lost, since = k, []fuzzOut{o}, o, o, arrival, 0, 0
		case 1, 2: // the next packet of the current layer
			if cur < 0 {
				continue
			}
			s := &srcs[cur]
			prevTS, prevPID, prevTL0 := s.ts, s.pid, s.tl0
			advance(s, arg&1 != 0, arg&2 != 0)
			o, ok := forward(s)
			if !ok {
				t.Fatalf("in-order packet dropped")
			}
			gap := o.in.SequenceNumber - last.in.SequenceNumber
			mask := uint16(1)<<s.bits - 1
			if o.sn != last.sn+gap || o.ts != last.ts+(s.ts-prevTS) ||
				o.pid != (last.pid+(s.pid-prevPID))&mask || o.tl0 != last.tl0+(s.tl0-prevTL0) {
				t.Fatalf("in order: %+v after %+v", o, last)
			}
			sent = append(sent, o)
			if len(sent) > 256 {
				sent = sent[1:]
			}
			last, lastAt, lost, since = o, arrival, 0, since+int(gap)
		case 3: // the current layer loses packets
			if n := int(arg%8) + 1; cur >= 0 && lost+n <= maxLoss {
				srcs[cur].sn += uint16(n)
				lost += n
			}
		case 4: // a retransmission or late packet of the current layer
			if cur < 0 {
				continue
			}
			if arg&1 == 0 {
				// From after the switch point: the same output as before.
				r := sent[int(arg>>1)%len(sent)]
				h := r.in
				sn, ts, ok := m.Rewrite(&h, arrival)
				var v VP8
				if err := v.Unmarshal(r.pkt); err != nil {
					t.Fatal(err)
				}
				out, err := vm.Rewrite(&v, r.pkt, buf)
				if err != nil || v.Unmarshal(out) != nil {
					t.Fatal("VP8 rewrite failed", err)
				}
				if !ok || sn != r.sn || ts != r.ts || v.PictureID != r.pid || v.TL0PICIDX != r.tl0 {
					t.Fatalf("retransmission of %+v mapped to (%d, %d, %v) pid %d tl0 %d",
						r, sn, ts, ok, v.PictureID, v.TL0PICIDX)
				}
			} else {
				// From before the switch point.
				h := first.in
				back := int(arg>>1) + 1
				h.SequenceNumber -= uint16(back)
				if since+back >= reach {
					continue
				}
				if _, _, ok := m.Rewrite(&h, arrival); ok {
					t.Fatalf("packet %d before the switch point %d forwarded",
						h.SequenceNumber, first.in.SequenceNumber)
				}
			}
		case 5: // a packet of another layer reaches the downTrack
			// (Before the first switch, the zero Munger would adopt it.)
			k := int(arg % 3)
			if k == cur || cur < 0 {
				continue
			}
			advance(&srcs[k], arg&4 != 0, arg&8 != 0)
			h, _ := srcs[k].packet()
			if _, _, ok := m.Rewrite(&h, arrival); ok {
				t.Fatalf("packet of layer %d forwarded while on layer %d", k, cur)
			}
		}
	}
}
