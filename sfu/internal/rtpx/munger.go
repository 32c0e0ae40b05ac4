package rtpx

import "github.com/pion/rtp"

// maxTSJump caps the timestamp advance Switch derives from wall-clock time.
// Receivers order RTP timestamps in serial arithmetic (RFC 3550 §5.1, §A.8),
// so an advance of 2^31 or more would look like a step backwards. At 90 kHz
// the cap is reached after a pause of about 6.6 hours.
const maxTSJump = 1<<31 - 1

// Munger maps the sequence numbers and timestamps of the packets a downTrack
// forwards, so that its subscriber sees one continuous RTP stream while the
// source changes between simulcast layers. Each layer has its own SSRC and
// independent, randomly based sequence numbers and timestamps (RFC 3550
// §5.1); the subscriber's decoder and jitter buffer must see neither a gap nor
// a jump back when the source changes.
//
// The zero value is ready to use. A Munger is not safe for concurrent use: its
// owner (a downTrack, under its mutex) calls Switch and Rewrite in packet
// order. Neither method allocates.
type Munger struct {
	// snOffset and tsOffset map the current source to the output:
	// out = in + offset, modulo 2^16 and 2^32.
	snOffset uint16
	tsOffset uint32
	// ssrc is the current source. Rewrite drops packets of any other SSRC.
	ssrc uint32
	// highestIn is the highest input SN of the current source, and
	// highestPos its distance from the switch point: the first packet after
	// Switch has position 0, and packets before it are dropped. Counting
	// positions instead of comparing with the switch SN keeps working after
	// the input has moved more than 2^15 packets on.
	highestIn  uint16
	highestPos int64
	// lastSN and lastTS are the output values of the packet with the highest
	// output SN, and lastArrival the time it arrived (Unix nanoseconds).
	lastSN      uint16
	lastTS      uint32
	lastArrival int64
	// started is set by the first Switch; forwarded by the first packet
	// Rewrite accepts, after which last* are valid.
	started   bool
	forwarded bool
}

// Switch makes the source of h the current source. Call it when h is the
// first packet to forward from a new source: the first packet of the track,
// or, on a layer switch, the first packet of a keyframe of the new layer. Then
// call Rewrite for h as for any other packet. arrival is the time h arrived,
// in Unix nanoseconds, and clockRate the RTP clock rate of the stream in Hz.
//
// Until a packet has been forwarded, the offsets are 0: the output starts
// with the first source's own sequence numbers and timestamps. After that,
// the new source's first packet h gets the output SN that follows the last
// one forwarded, so the output has no gap, and an output timestamp advanced
// from the last one by the wall-clock time elapsed since that packet arrived
// (at least 1, so that timestamps always increase; at most maxTSJump).
//
// Switch may also be called with the current source, to resume it after a
// pause without exposing the sequence gap.
func (m *Munger) Switch(h *rtp.Header, arrival int64, clockRate uint32) {
	m.ssrc = h.SSRC
	m.highestIn = h.SequenceNumber - 1
	m.highestPos = -1
	m.started = true
	if !m.forwarded {
		m.snOffset, m.tsOffset = 0, 0
		return
	}
	m.snOffset = m.lastSN + 1 - h.SequenceNumber
	ts := m.lastTS + tsAdvance(arrival-m.lastArrival, clockRate)
	m.tsOffset = ts - h.Timestamp
}

// Rewrite returns the output sequence number and timestamp for h, a packet of
// the current source that arrived at arrival (Unix nanoseconds). The header is
// only read; the caller writes sn and ts into its own copy.
//
// ok is false, and the packet must be dropped, when h precedes the switch
// point (a retransmission or a late packet of the current source that was sent
// before the switch: its output SN would fall into the range of the previous
// source) or when h is from another SSRC (a packet of the previous layer that
// reached the downTrack after the switch). Reordered packets after the switch
// point pass with their own SN; only a new highest SN advances the state.
//
// On a zero Munger, the first call makes h's source current, as Switch would.
func (m *Munger) Rewrite(h *rtp.Header, arrival int64) (sn uint16, ts uint32, ok bool) {
	if !m.started {
		m.Switch(h, arrival, 0)
	}
	if h.SSRC != m.ssrc {
		return 0, 0, false
	}
	d := SeqDiff(h.SequenceNumber, m.highestIn)
	pos := m.highestPos + int64(d)
	if pos < 0 {
		return 0, 0, false
	}
	sn = h.SequenceNumber + m.snOffset
	ts = h.Timestamp + m.tsOffset
	if d > 0 {
		m.highestIn = h.SequenceNumber
		m.highestPos = pos
		m.lastSN = sn
		m.lastTS = ts
		m.lastArrival = arrival
		m.forwarded = true
	}
	return sn, ts, true
}

// tsAdvance converts elapsed nanoseconds to RTP clock ticks at clockRate,
// clamped to [1, maxTSJump].
func tsAdvance(elapsed int64, clockRate uint32) uint32 {
	if elapsed <= 0 || clockRate == 0 {
		return 1
	}
	const nanos = 1_000_000_000
	sec, frac := uint64(elapsed/nanos), uint64(elapsed%nanos)
	if sec >= maxTSJump { // clockRate >= 1, so the result would be capped
		return maxTSJump
	}
	// sec < 2^31 and frac < 2^30: neither product overflows 64 bits.
	ticks := sec*uint64(clockRate) + frac*uint64(clockRate)/nanos
	switch {
	case ticks < 1:
		return 1
	case ticks > maxTSJump:
		return maxTSJump
	}
	return uint32(ticks)
}
