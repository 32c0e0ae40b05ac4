package signalling

// Observer is told when participants come and go, for the authorisation
// service (and later webhooks). Methods are called from signalling
// goroutines, after the change, with no lock held; they must not block.
type Observer interface {
	// ParticipantJoined is called when a participant has joined room.
	ParticipantJoined(room, identity string)
	// ParticipantLeft is called when a participant has left room for
	// good (not when its signal connection drops for a resume).
	ParticipantLeft(room, identity string)
}
