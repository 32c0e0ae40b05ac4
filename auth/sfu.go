package auth

// SFU is what the authorisation service needs of the media server.
// signalling.Server implements it. Methods are safe for concurrent use.
type SFU interface {
	// RoomExists reports whether an SFU room named room is open.
	RoomExists(room string) bool
	// CreateRoom opens room if it is not open yet.
	CreateRoom(room string) error
	// Participants lists the identities in room.
	Participants(room string) []string
	// RemoveParticipant disconnects identity from room; reason is logged and
	// given to the client as far as the protocol allows. Removing someone
	// who is not there is not an error.
	RemoveParticipant(room, identity, reason string) error
}
