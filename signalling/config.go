package signalling

import (
	"log/slog"
	"time"

	"github.com/stoa-rtc/stoa/sfu"
)

// Config holds the signalling server's settings. Keys is the only field
// without a usable zero value.
type Config struct {
	// Keys maps API keys to their secrets. Access tokens are HS256 JWTs whose
	// issuer is one of these keys.
	Keys map[string]string
	// RTC configures the media plane.
	RTC sfu.Config
	// EmptyTimeout closes a room nobody joined within this time after it was
	// created. Default 5 minutes, as LiveKit.
	EmptyTimeout time.Duration
	// DepartureTimeout closes a room this long after its last participant
	// left. Default 20 seconds, as LiveKit.
	DepartureTimeout time.Duration
	// NodeID names this node in ServerInfo. Default: a random ND_ id.
	NodeID string
	// Observer, if set, is told about participants joining and leaving.
	Observer Observer
	// Logger receives the server's logs. nil means slog.Default().
	Logger *slog.Logger
}
