package auth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"
)

// Service is the authorisation service: the lk-jwt-service compatible
// endpoints, the room-state watcher and the enforcer that removes
// participants whose membership ended.
type Service struct {
	cfg     Config
	log     *slog.Logger
	sfu     SFU
	view    RoomView // nil when neither bot nor appservice mode is configured
	watcher watcher  // nil likewise
	tickets tickets
	mux     *http.ServeMux
}

// watcher follows Matrix rooms and reports changes to the enforcer.
type watcher interface {
	RoomView
	// Run follows the rooms until ctx ends.
	Run(ctx context.Context) error
}

// New builds the service. It does not contact the homeserver until Run.
func New(cfg Config, sfu SFU) (*Service, error) {
	if cfg.PublicURL == "" || cfg.APIKey == "" || cfg.APISecret == "" {
		return nil, errors.New("auth: PublicURL, APIKey and APISecret are required")
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.MembershipGrace <= 0 {
		cfg.MembershipGrace = 30 * time.Second
	}
	if cfg.UnseenRooms == "" {
		cfg.UnseenRooms = UnseenDeny
	}
	if cfg.UnseenRooms != UnseenDeny && cfg.UnseenRooms != UnseenLKJWT {
		return nil, errors.New(`auth: unseen_rooms must be "deny" or "lk-jwt"`)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Service{cfg: cfg, log: cfg.Logger, sfu: sfu, mux: http.NewServeMux()}
	w, err := newWatcher(s)
	if err != nil {
		return nil, err
	}
	if w != nil {
		s.watcher = w
		s.view = w
	}
	s.routes()
	return s, nil
}

// Handler serves the service's HTTP endpoints.
func (s *Service) Handler() http.Handler { return s.mux }

// Run follows Matrix room state until ctx ends. Without a watcher it just
// waits.
func (s *Service) Run(ctx context.Context) error {
	if s.watcher == nil {
		<-ctx.Done()
		return nil
	}
	return s.watcher.Run(ctx)
}
