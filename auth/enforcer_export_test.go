package auth

import "time"

// SetLeaveGrace sets how long after a participant left the SFU its
// still-present call membership is ended (default 8 s), for tests in
// package auth_test. Call it before Run.
func SetLeaveGrace(s *Service, d time.Duration) {
	if e := s.enforcerOf(); e != nil {
		e.leaveGrace = d
	}
}
