package rtpx

// VP8Munger rewrites the picture ID and TL0PICIDX of the VP8 payload
// descriptors a downTrack forwards, so that they continue across a change of
// simulcast layer. Each layer numbers its pictures independently (RFC 7741
// §4.2); a receiver that sees the picture ID jump treats the frames in between
// as lost and asks for a keyframe.
//
// Like Munger, the zero value is ready to use, a VP8Munger is not safe for
// concurrent use, and it is driven by its owner in packet order. Use it
// alongside a Munger: call Switch whenever the Munger switches, and Rewrite
// only for packets the Munger accepted.
type VP8Munger struct {
	// pidIn and pidOut are the picture IDs of the newest picture seen, in
	// and out; pidIn is pidBits wide, pidOut is kept 15 bits wide. A packet's
	// output ID is pidOut plus its distance from pidIn, so a 7-bit ID and a
	// 15-bit ID wrap at their own width.
	pidIn   uint16
	pidOut  uint16
	pidBits uint8
	// tl0In and tl0Out are the same for TL0PICIDX.
	tl0In  uint8
	tl0Out uint8
	// pidSynced and tl0Synced are cleared by Switch: the next packet that
	// carries the field re-bases the mapping on it. pidStarted and
	// tl0Started are set once the first such packet has been seen; before
	// that, the first source keeps its own values.
	pidSynced  bool
	tl0Synced  bool
	pidStarted bool
	tl0Started bool
}

// Switch marks the next packet passed to Rewrite as the first of a new
// source. Its picture ID will follow the last one forwarded (last + 1, modulo
// 2^7 or 2^15 as the packet's field is wide), and so will its TL0PICIDX
// (last + 1, modulo 2^8): the switch happens at a keyframe, which starts a new
// picture of the temporal base layer. If that packet lacks either field, the
// first later packet that carries it is mapped so.
func (m *VP8Munger) Switch() {
	m.pidSynced = false
	m.tl0Synced = false
}

// Rewrite maps the descriptor of payload, which v describes (v must come from
// v.Unmarshal(payload)), and returns the payload to forward, as PutVP8IDs
// does with the IDs Map returns.
func (m *VP8Munger) Rewrite(v *VP8, payload, buf []byte) ([]byte, error) {
	pid, tl0 := m.Map(v)
	return PutVP8IDs(v, payload, buf, pid, tl0)
}

// Map returns the output picture ID and TL0PICIDX for the descriptor v and
// advances the state; a field v lacks maps to 0 and changes nothing.
func (m *VP8Munger) Map(v *VP8) (pid uint16, tl0 uint8) {
	if v.HasPictureID {
		pid = m.mapPictureID(v.PictureID, v.PictureIDBits)
	}
	if v.HasTL0PICIDX {
		tl0 = m.mapTL0(v.TL0PICIDX)
	}
	return pid, tl0
}

// PutVP8IDs returns payload, which v describes (v must come from
// v.Unmarshal(payload)), with picture ID pid and TL0PICIDX tl0 (fields v
// lacks are left alone):
//
//   - payload itself when the descriptor needs no change, including when it
//     carries neither a picture ID nor a TL0PICIDX. No bytes are copied.
//   - otherwise a copy of payload in buf[:len(payload)] in which only the
//     picture ID and TL0PICIDX differ. The field widths (the M bit) are kept.
//     The copy is appended to buf[:0], so pass a buffer with a capacity of at
//     least the largest payload (the MTU) to avoid an allocation.
//
// payload is never modified: it is shared by every subscriber of the track.
// The result is valid until buf or payload is reused. PutVP8IDs returns
// ErrShortPacket if v does not fit in payload.
func PutVP8IDs(v *VP8, payload, buf []byte, pid uint16, tl0 uint8) ([]byte, error) {
	// The picture ID starts after the first two octets; TL0PICIDX follows.
	const pidAt = 2
	pidLen := 0
	if v.HasPictureID {
		pidLen = 1
		if v.PictureIDBits == 15 {
			pidLen = 2
		}
	}
	tl0At := pidAt + pidLen
	end := 0 // the end of the fields to rewrite
	switch {
	case v.HasTL0PICIDX:
		end = tl0At + 1
	case v.HasPictureID:
		end = tl0At
	}
	if v.HeaderLen > len(payload) || end > len(payload) {
		return nil, ErrShortPacket
	}
	if pidLen == 1 {
		pid &= 0x7f
	}
	changed := (v.HasPictureID && pid != v.PictureID) || (v.HasTL0PICIDX && tl0 != v.TL0PICIDX)
	if !changed {
		return payload, nil
	}

	out := append(buf[:0], payload...)
	switch pidLen {
	case 1:
		out[pidAt] = byte(pid) & 0x7f
	case 2:
		out[pidAt] = vp8M | byte(pid>>8)&0x7f
		out[pidAt+1] = byte(pid)
	}
	if v.HasTL0PICIDX {
		out[tl0At] = tl0
	}
	return out, nil
}

// mapPictureID returns the output picture ID for in, a bits-wide (7 or 15)
// picture ID, and advances the state if in is the newest picture yet.
func (m *VP8Munger) mapPictureID(in uint16, bits uint8) uint16 {
	mask := uint16(0x7fff)
	if bits != 15 {
		bits, mask = 7, 0x7f
	}
	in &= mask
	if !m.pidSynced || bits != m.pidBits {
		// Re-base so that in maps to pidOut+1; the first source keeps its IDs.
		if !m.pidStarted {
			m.pidOut = (in - 1) & 0x7fff
			m.pidStarted = true
		}
		m.pidIn = (in - 1) & mask
		m.pidBits = bits
		m.pidSynced = true
	}
	// Signed distance from pidIn, in serial arithmetic at the field's width.
	shift := 16 - bits
	d := int16((in-m.pidIn)<<shift) >> shift
	out := (m.pidOut + uint16(d)) & 0x7fff
	if d > 0 {
		m.pidIn = in
		m.pidOut = out
	}
	return out & mask
}

// mapTL0 returns the output TL0PICIDX for in and advances the state if in is
// the newest yet.
func (m *VP8Munger) mapTL0(in uint8) uint8 {
	if !m.tl0Synced {
		if !m.tl0Started {
			m.tl0Out = in - 1
			m.tl0Started = true
		}
		m.tl0In = in - 1
		m.tl0Synced = true
	}
	d := int8(in - m.tl0In)
	out := m.tl0Out + uint8(d)
	if d > 0 {
		m.tl0In = in
		m.tl0Out = out
	}
	return out
}
