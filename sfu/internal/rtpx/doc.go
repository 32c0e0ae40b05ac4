// Package rtpx is the pure packet logic of the forwarding path: sequence
// number arithmetic, codec keyframe detection, the VP8 payload descriptor,
// the per-subscriber SN/TS and VP8 picture-id mungers, and the simulcast
// layer selector.
//
// Nothing here starts a goroutine, touches a PeerConnection or logs. No type
// is safe for concurrent use: each value is owned by one caller (a downTrack
// under its own mutex, or an upTrack's read loop), which serialises access.
// The per-packet functions do not allocate, and they never modify a payload
// they are given: payloads are shared between subscribers.
package rtpx
