package auth

// routes mounts the HTTP endpoints. (Being written.)
func (s *Service) routes() {}
