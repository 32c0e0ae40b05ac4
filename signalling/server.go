package signalling

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livekit/protocol/livekit"

	"github.com/stoa-rtc/stoa/sfu"
)

// Version is the LiveKit server version whose client protocol Stoa speaks.
// Clients gate features on it: livekit-client refuses RPC below 1.8.0.
const Version = "1.9.0"

// protocolVersion is the signal protocol announced in ServerInfo (the
// clients of PROTOCOL.md send 17).
const protocolVersion = 16

// Server speaks LiveKit's client protocol over HTTP and WebSocket and drives
// the SFU. It is an http.Handler; mount it at the root of the listener.
type Server struct {
	cfg      Config
	log      *slog.Logger
	sfu      *sfu.SFU
	mux      *http.ServeMux
	upgrader websocket.Upgrader
	wg       sync.WaitGroup // signal connections being served

	mu     sync.Mutex // guards the following fields
	rooms  map[string]*room
	closed bool
}

// NewServer builds a Server and binds the media plane's sockets.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.EmptyTimeout <= 0 {
		cfg.EmptyTimeout = 5 * time.Minute
	}
	if cfg.DepartureTimeout <= 0 {
		cfg.DepartureTimeout = 20 * time.Second
	}
	if cfg.NodeID == "" {
		cfg.NodeID = newID("ND_")
	}
	if cfg.RTC.Logger == nil {
		cfg.RTC.Logger = cfg.Logger.With("component", "sfu")
	}
	media, err := sfu.New(cfg.RTC)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:   cfg,
		log:   cfg.Logger,
		sfu:   media,
		mux:   http.NewServeMux(),
		rooms: map[string]*room{},
		upgrader: websocket.Upgrader{
			// Browsers join from any origin (an embedded Element Call, a
			// meeting page); the access token is the credential.
			CheckOrigin:       func(*http.Request) bool { return true },
			EnableCompression: true,
		},
	}
	s.mux.HandleFunc("GET /rtc", s.handleRTC(false))
	s.mux.HandleFunc("GET /rtc/v1", s.handleRTC(true))
	s.mux.HandleFunc("GET /rtc/validate", s.handleValidate(false))
	s.mux.HandleFunc("GET /rtc/v1/validate", s.handleValidate(true))
	s.mux.Handle(livekit.RoomServicePathPrefix, newRoomService(s))
	s.mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		_, _ = w.Write([]byte("OK"))
	})
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	withCORS(s.mux).ServeHTTP(w, r)
}

// Handle mounts h at pattern next to the signalling routes (for the
// authorisation service and the web client).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// room returns the room named name, creating it with the server's default
// settings if create is set. It returns nil if there is no such room or the
// server is closed.
func (s *Server) room(name string, create bool) *room {
	if create {
		r, _ := s.openRoom(name, roomSettings{
			emptyTimeout:     s.cfg.EmptyTimeout,
			departureTimeout: s.cfg.DepartureTimeout,
		})
		return r
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	return s.rooms[name]
}

// openRoom returns the open room named name and false, or creates it with
// settings and returns true. A room that is closing makes way for a new one.
// It returns nil if the server is closed.
func (s *Server) openRoom(name string, settings roomSettings) (*room, bool) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, false
		}
		r := s.rooms[name]
		if r == nil {
			r = newRoom(s, name, settings)
			s.rooms[name] = r
			s.mu.Unlock()
			r.log.Info("room created")
			return r, true
		}
		s.mu.Unlock()
		if !r.isClosed() {
			return r, false
		}
		s.dropRoom(r)
	}
}

func (s *Server) dropRoom(r *room) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rooms[r.name] == r {
		delete(s.rooms, r.name)
	}
}

// Close disconnects every participant (they are told to reconnect, as for
// a server shutdown) and releases the media plane's sockets.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	rooms := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, r)
	}
	s.mu.Unlock()
	for _, r := range rooms {
		r.mu.Lock()
		ps := make([]*participant, 0, len(r.participants))
		for _, p := range r.participants {
			ps = append(ps, p)
		}
		r.mu.Unlock()
		for _, p := range ps {
			p.close(livekit.DisconnectReason_SERVER_SHUTDOWN, livekit.LeaveRequest_RECONNECT, false)
		}
		r.close(livekit.DisconnectReason_SERVER_SHUTDOWN)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.log.Warn("signal connections still open at shutdown")
	}
	return s.sfu.Close()
}
