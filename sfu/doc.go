// Package sfu is Stoa's media plane: a selective forwarding unit on pion.
//
// It knows nothing of HTTP, JSON, LiveKit's protobufs or Matrix. Signalling
// creates a Peer per PeerConnection, wraps every published media section in
// an UpTrack and gives each subscriber a DownTrack of it.
//
// The path of a forwarded RTP packet:
//
//	udpbatch reader    the shared socket's one reader hands each datagram from a
//	                   publisher on the own path to its srtpIn: decrypt with the
//	                   connection's remote SRTP context, note transport-cc, NACK
//	                   and report statistics, then upLayer.forward on this goroutine
//	                   (other packets, RTX and connections without own keys take
//	                   pion's path: ICE > SRTP > interceptors > upLayer.readLoop,
//	                   which calls the same forward)
//	upLayer.forward    keep a copy in the layer's history (for NACKs), parse the
//	                   header in place, load the DownTrack snapshot, open a batch on
//	                   the UDP socket and call DownTrack.writeRTP for each
//	DownTrack          layer gate (atomics), then under its mutex the munger rewrites
//	                   SSRC, PT, sequence number, timestamp (and the VP8 picture id)
//	                   into a header it owns, and records what it sent
//	srtpOut            the subscriber connection's own SRTP context (keys from the
//	                   DTLS handshake): marshal, encrypt in place, and add to the batch
//	udpbatch           one sendmmsg for the whole fan-out (or a frame on ICE-TCP)
//
// Nothing of pion runs per packet on a connection on the own paths: NACKs
// are answered from the layer histories, sender reports are written by each
// DownTrack, and a connection whose keys are unknown falls back to pion's
// reader and writer for its whole life.
//
// Payloads are shared between subscribers and never modified; end-to-end
// encrypted frames pass through untouched.
package sfu
