package auth

// ParticipantJoined is called by the SFU when a participant joined room.
func (s *Service) ParticipantJoined(room, identity string) {}

// ParticipantLeft is called by the SFU when a participant left room.
func (s *Service) ParticipantLeft(room, identity string) {}
