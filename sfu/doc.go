// Package sfu is Stoa's media plane: a selective forwarding unit on pion.
//
// It knows nothing of HTTP, JSON, LiveKit's protobufs or Matrix. Signalling
// creates a Peer per PeerConnection, wraps every published media section in
// an UpTrack and gives each subscriber a DownTrack of it.
//
// The path of a forwarded RTP packet:
//
//	pion: UDP > ICE > SRTP decrypt > receive interceptors (NACK generator, RR, TWCC feedback)
//	upLayer.readLoop   one goroutine per received stream: read into its own buffer,
//	                   parse the header in place, load the DownTrack snapshot,
//	                   call DownTrack.writeRTP for each
//	DownTrack          layer gate (atomics), then under its mutex the munger rewrites
//	                   SSRC, PT, sequence number, timestamp (and the VP8 picture id)
//	                   into a header it owns and writes to the sender's stream
//	pion: send interceptors (NACK responder history, SR) > SRTP encrypt > UDP
//
// Payloads are shared between subscribers and never modified; end-to-end
// encrypted frames pass through untouched.
package sfu
