package sfu

import "errors"

var (
	// ErrClosed is returned by operations on a closed Peer or track.
	ErrClosed = errors.New("sfu: closed")
	// ErrNoCodec means the subscriber did not negotiate the publisher's codec.
	ErrNoCodec             = errors.New("sfu: subscriber does not support the track's codec")
	errNoRemoteDescription = errors.New("sfu: no remote description")
)
