package rtpx

// RTP sequence numbers (16 bits) and timestamps (32 bits) wrap around. They
// are compared in serial number arithmetic (RFC 1982 §3.2), as RFC 3550 §A.1
// does to detect wrap-around: a precedes b when b is less than half the number
// space ahead of a. At exactly half the space apart the order is undefined;
// here neither value precedes the other.

// SeqLess reports whether sequence number a precedes b.
func SeqLess(a, b uint16) bool {
	return int16(b-a) > 0
}

// SeqDiff returns the signed distance from b to a (a - b), in [-32768, 32767]:
// positive when a is ahead of b. SeqDiff(a, b) < 0 exactly when SeqLess(a, b),
// except at the undefined half-way distance, where SeqDiff is -32768.
func SeqDiff(a, b uint16) int {
	return int(int16(a - b))
}

// TSLess reports whether RTP timestamp a precedes b.
func TSLess(a, b uint32) bool {
	return int32(b-a) > 0
}

// TSDiff returns the signed distance from timestamp b to a (a - b), in
// [-2^31, 2^31-1], with the same convention as SeqDiff.
func TSDiff(a, b uint32) int {
	return int(int32(a - b))
}
