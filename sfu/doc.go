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
//	                   keep a copy in the layer's history (for NACKs), parse the
//	                   header in place, load the DownTrack snapshot, open a batch on
//	                   the UDP socket and call DownTrack.writeRTP for each
//	DownTrack          layer gate (atomics), then under its mutex the munger rewrites
//	                   SSRC, PT, sequence number, timestamp (and the VP8 picture id)
//	                   into a header it owns, and records what it sent
//	srtpOut            the subscriber connection's own SRTP context (keys from the
//	                   DTLS handshake): marshal, encrypt in place, and add to the batch
//	udpbatch           one sendmmsg for the whole fan-out (or a frame on ICE-TCP)
//
// Nothing of pion runs on the send side per packet: NACKs are answered from
// the layer histories, sender reports are written by each DownTrack, and a
// connection whose keys are unknown falls back to pion's writer for its
// whole life.
//
// Payloads are shared between subscribers and never modified; end-to-end
// encrypted frames pass through untouched.
package sfu
