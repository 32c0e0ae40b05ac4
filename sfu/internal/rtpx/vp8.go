package rtpx

// VP8 is a parsed VP8 payload descriptor (RFC 7741 §4.2):
//
//	     0 1 2 3 4 5 6 7
//	    +-+-+-+-+-+-+-+-+
//	    |X|R|N|S|R| PID | (REQUIRED)
//	    +-+-+-+-+-+-+-+-+
//	X:  |I|L|T|K| RSV   | (OPTIONAL)
//	    +-+-+-+-+-+-+-+-+
//	I:  |M| PictureID   | (OPTIONAL, 7 bits, or 15 bits when M=1)
//	    +-+-+-+-+-+-+-+-+
//	M:  |   PictureID   |
//	    +-+-+-+-+-+-+-+-+
//	L:  |   TL0PICIDX   | (OPTIONAL)
//	    +-+-+-+-+-+-+-+-+
//	T/K:|TID|Y| KEYIDX  | (OPTIONAL)
//	    +-+-+-+-+-+-+-+-+
//
// It holds no reference to the payload it was parsed from. The zero value is
// an empty descriptor; fill it with Unmarshal.
type VP8 struct {
	// HeaderLen is the descriptor's length in bytes: the VP8 payload starts
	// at payload[HeaderLen].
	HeaderLen int

	// PictureID is the picture ID, PictureIDBits (7 or 15, set by the M bit)
	// wide. Only meaningful when HasPictureID.
	PictureID     uint16
	PictureIDBits uint8

	// PID is the partition index, S marks the start of a partition and N a
	// non-reference frame.
	PID uint8
	S   bool
	N   bool

	HasPictureID bool
	HasTL0PICIDX bool
	HasTID       bool
	HasKeyIdx    bool

	// TL0PICIDX is the running index of the temporal base layer picture.
	TL0PICIDX uint8
	// TID is the temporal layer index and Y the layer sync bit; meaningful
	// when HasTID.
	TID uint8
	Y   bool
	// KeyIdx is the temporal key frame index; meaningful when HasKeyIdx.
	KeyIdx uint8

	// IsKeyframe is true for the first packet of a key frame: S=1, PID=0, and
	// the VP8 payload header (RFC 6386 §9.1, RFC 7741 §4.3) has the inverse
	// key frame flag P=0 in its 3-byte frame tag, followed by the key frame
	// start code 9d 01 2a. These 6 bytes stay in clear under end-to-end
	// encryption, which leaves the first 10 bytes of a VP8 key frame
	// unencrypted so that the SFU can see them.
	IsKeyframe bool
}

// Masks of the VP8 payload descriptor (RFC 7741 §4.2).
const (
	vp8X = 0x80 // first octet: extended control bits present
	vp8N = 0x20 // first octet: non-reference frame
	vp8S = 0x10 // first octet: start of VP8 partition
	vp8I = 0x80 // X octet: picture ID present
	vp8L = 0x40 // X octet: TL0PICIDX present
	vp8T = 0x20 // X octet: TID present
	vp8K = 0x10 // X octet: KEYIDX present
	vp8M = 0x80 // picture ID: 15-bit picture ID
)

// vp8KeyframeHeader is the number of bytes of VP8 payload IsKeyframe reads:
// the 3-byte frame tag and the 3-byte start code (RFC 6386 §9.1).
const vp8KeyframeHeader = 6

// Unmarshal parses the descriptor at the start of payload into v, replacing
// all of v's fields. It returns ErrShortPacket if the descriptor is truncated
// or is not followed by at least one byte of VP8 payload; v is then
// unspecified. Unmarshal does not allocate and does not retain payload.
func (v *VP8) Unmarshal(payload []byte) error {
	*v = VP8{}
	if len(payload) == 0 {
		return ErrShortPacket
	}
	b := payload[0]
	v.N = b&vp8N != 0
	v.S = b&vp8S != 0
	v.PID = b & 0x07
	n := 1
	if b&vp8X != 0 {
		if len(payload) <= n {
			return ErrShortPacket
		}
		x := payload[n]
		n++
		if x&vp8I != 0 {
			if len(payload) <= n {
				return ErrShortPacket
			}
			v.HasPictureID = true
			if payload[n]&vp8M != 0 {
				if len(payload) <= n+1 {
					return ErrShortPacket
				}
				v.PictureID = uint16(payload[n]&0x7f)<<8 | uint16(payload[n+1])
				v.PictureIDBits = 15
				n += 2
			} else {
				v.PictureID = uint16(payload[n])
				v.PictureIDBits = 7
				n++
			}
		}
		if x&vp8L != 0 {
			if len(payload) <= n {
				return ErrShortPacket
			}
			v.HasTL0PICIDX = true
			v.TL0PICIDX = payload[n]
			n++
		}
		if x&(vp8T|vp8K) != 0 {
			if len(payload) <= n {
				return ErrShortPacket
			}
			tk := payload[n]
			n++
			if x&vp8T != 0 {
				v.HasTID = true
				v.TID = tk >> 6
				v.Y = tk&0x20 != 0
			}
			if x&vp8K != 0 {
				v.HasKeyIdx = true
				v.KeyIdx = tk & 0x1f
			}
		}
	}
	if len(payload) <= n {
		return ErrShortPacket
	}
	v.HeaderLen = n
	if v.S && v.PID == 0 && len(payload) >= n+vp8KeyframeHeader {
		h := payload[n:]
		v.IsKeyframe = h[0]&0x01 == 0 && h[3] == 0x9d && h[4] == 0x01 && h[5] == 0x2a
	}
	return nil
}
