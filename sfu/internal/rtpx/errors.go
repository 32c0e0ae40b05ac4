package rtpx

import "errors"

// ErrShortPacket is returned when a payload ends before the structure it
// declares (a truncated VP8 payload descriptor, or a descriptor that leaves no
// VP8 payload). The packet is malformed and should be dropped, and counted.
var ErrShortPacket = errors.New("rtpx: packet too short")
