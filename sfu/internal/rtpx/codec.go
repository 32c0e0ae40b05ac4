package rtpx

import (
	"strconv"
	"strings"
)

// Codec identifies the payload format of an RTP stream.
type Codec uint8

// The codecs the forwarding path knows how to inspect.
const (
	CodecUnknown Codec = iota
	CodecOpus
	CodecVP8
	CodecVP9
	CodecH264
	CodecAV1
)

// String returns the codec's MIME subtype as WebRTC spells it ("VP8", "opus").
func (c Codec) String() string {
	switch c {
	case CodecUnknown:
		return "unknown"
	case CodecOpus:
		return "opus"
	case CodecVP8:
		return "VP8"
	case CodecVP9:
		return "VP9"
	case CodecH264:
		return "H264"
	case CodecAV1:
		return "AV1"
	}
	return "Codec(" + strconv.Itoa(int(c)) + ")"
}

// CodecFromMime maps a WebRTC MIME type ("video/VP8", "audio/opus"; the
// RTPCodecCapability.MimeType of pion) to a Codec, ignoring case as MIME types
// are case-insensitive (RFC 6838 §4.2). Anything else is CodecUnknown.
func CodecFromMime(mime string) Codec {
	switch {
	case strings.EqualFold(mime, "audio/opus"):
		return CodecOpus
	case strings.EqualFold(mime, "video/VP8"):
		return CodecVP8
	case strings.EqualFold(mime, "video/VP9"):
		return CodecVP9
	case strings.EqualFold(mime, "video/H264"):
		return CodecH264
	case strings.EqualFold(mime, "video/AV1"):
		return CodecAV1
	}
	return CodecUnknown
}

// IsKeyframe reports whether an RTP payload of codec c starts a keyframe: a
// layer switch or a new subscriber may begin with this packet. The payload is
// only read; malformed input gives false.
//
// The checks read only what end-to-end encryption (WebRTC encoded transforms,
// LiveKit's FrameCryptor) leaves in clear: the payload descriptors, the first
// bytes of a VP8 key frame and the H.264 NAL unit headers.
//
//   - Opus: true for any non-empty payload. Every Opus packet can start
//     decoding, so a caller that waits for a keyframe need not special-case
//     audio.
//   - VP8: see VP8.IsKeyframe.
//   - VP9: the first packet of a picture (B=1) that is not inter-picture
//     predicted (P=0) and, with spatial layers (L=1), of the base layer
//     (SID=0); the whole descriptor must be well formed (RFC 9628 §4.2).
//   - H.264: an IDR slice or an SPS, alone, inside a STAP-A, or as the first
//     fragment of an FU-A (RFC 6184 §5.6, §5.7.1, §5.8).
//   - AV1: the N bit of the aggregation header, which marks the first packet
//     of a coded video sequence (AV1 RTP specification §4.4).
func IsKeyframe(c Codec, payload []byte) bool {
	switch c {
	case CodecOpus:
		return len(payload) > 0
	case CodecVP8:
		var v VP8
		return v.Unmarshal(payload) == nil && v.IsKeyframe
	case CodecVP9:
		return vp9Keyframe(payload)
	case CodecH264:
		return h264Keyframe(payload)
	case CodecAV1:
		return av1Keyframe(payload)
	case CodecUnknown:
	}
	return false
}

// VP9 payload descriptor, first octet (RFC 9628 §4.2): |I|P|L|F|B|E|V|Z|.
const (
	vp9I = 0x80 // picture ID present
	vp9P = 0x40 // inter-picture predicted
	vp9L = 0x20 // layer indices present
	vp9F = 0x10 // flexible mode
	vp9B = 0x08 // start of a frame
	vp9V = 0x02 // scalability structure present
)

// vp9Keyframe walks the RFC 9628 §4.2 descriptor: picture ID (7 or 15 bits),
// layer indices (plus TL0PICIDX in non-flexible mode), and the scalability
// structure. P_DIFF octets only follow when P=1, which is never a keyframe.
// At least one octet of VP9 payload must follow the descriptor.
func vp9Keyframe(p []byte) bool {
	if len(p) == 0 {
		return false
	}
	b := p[0]
	if b&vp9B == 0 || b&vp9P != 0 {
		return false
	}
	n := 1
	if b&vp9I != 0 {
		if len(p) <= n {
			return false
		}
		if p[n]&0x80 != 0 { // M: 15-bit picture ID
			n += 2
		} else {
			n++
		}
	}
	if b&vp9L != 0 {
		if len(p) <= n {
			return false
		}
		// |  T  |U|  S  |D|: only the base spatial layer starts a keyframe;
		// upper layers of a key picture depend on it (D=1).
		if (p[n]>>1)&0x07 != 0 {
			return false
		}
		n++
		if b&vp9F == 0 {
			n++ // TL0PICIDX
		}
	}
	if b&vp9V != 0 {
		var ok bool
		if n, ok = vp9SSEnd(p, n); !ok {
			return false
		}
	}
	return n < len(p)
}

// vp9SSEnd returns the offset just past the scalability structure starting at
// p[n] (RFC 9628 §4.2.1): | N_S |Y|G|-|-|-|, then N_S+1 16-bit width/height
// pairs if Y, then N_G if G and N_G picture-group entries | T |U| R |-|-|,
// each followed by R P_DIFF octets.
func vp9SSEnd(p []byte, n int) (int, bool) {
	if len(p) <= n {
		return n, false
	}
	b := p[n]
	n++
	if b&0x10 != 0 {
		n += 4 * (int(b>>5) + 1)
	}
	if b&0x08 == 0 {
		return n, true
	}
	if len(p) <= n {
		return n, false
	}
	groups := int(p[n])
	n++
	for range groups {
		if len(p) <= n {
			return n, false
		}
		n += 1 + int(p[n]>>2)&0x03
	}
	return n, true
}

// H.264 NAL unit types (ITU-T H.264 Table 7-1; RFC 6184 §5.4 for 24-29).
// Packetization mode 1, the one WebRTC uses, allows single NAL units, STAP-A
// and FU-A (RFC 6184 §6.3); STAP-B, MTAP and FU-B are never keyframes here.
const (
	h264IDR   = 5  // coded slice of an IDR picture
	h264SPS   = 7  // sequence parameter set, sent just before an IDR
	h264STAPA = 24 // single-time aggregation packet (RFC 6184 §5.7.1)
	h264FUA   = 28 // fragmentation unit A (RFC 6184 §5.8)
)

func h264KeyNAL(header byte) bool {
	t := header & 0x1f
	return t == h264IDR || t == h264SPS
}

func h264Keyframe(p []byte) bool {
	if len(p) == 0 {
		return false
	}
	switch t := p[0] & 0x1f; {
	case t >= 1 && t <= 23:
		return h264KeyNAL(p[0])
	case t == h264STAPA:
		// Aggregated NAL units, each preceded by a 16-bit size.
		for n := 1; n+2 < len(p); {
			size := int(p[n])<<8 | int(p[n+1])
			n += 2
			if size == 0 || n+size > len(p) {
				return false
			}
			if h264KeyNAL(p[n]) {
				return true
			}
			n += size
		}
		return false
	case t == h264FUA:
		// FU header |S|E|R|Type|: only the first fragment (S=1) starts the NAL.
		return len(p) > 2 && p[1]&0x80 != 0 && h264KeyNAL(p[1])
	}
	return false
}

// AV1 aggregation header |Z|Y| W |N|-|-|-| (AV1 RTP specification §4.4). N=1
// marks the first packet of a coded video sequence, which cannot start with a
// continued OBU fragment (Z=1).
func av1Keyframe(p []byte) bool {
	return len(p) > 1 && p[0]&0x08 != 0 && p[0]&0x80 == 0
}
