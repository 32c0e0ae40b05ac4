package auth

import (
	"log/slog"
	"time"
)

// UnseenRooms policies: what to do for a room the service cannot see (no
// bot in it, not covered by the application service).
const (
	// UnseenDeny refuses tokens for rooms Stoa cannot see (the default).
	UnseenDeny = "deny"
	// UnseenLKJWT behaves as lk-jwt-service: users of FullAccessHomeservers
	// may create calls, others may only join calls that exist.
	UnseenLKJWT = "lk-jwt"
)

// Config configures the authorisation service. Fields are documented with
// their defaults; the zero value of each optional field works.
type Config struct {
	// PublicURL is the SFU's public WebSocket URL, returned to clients as
	// "url" (for example wss://stoa.example.org). Required.
	PublicURL string
	// ServiceURL is where clients reach this service (its /sfu/get and
	// /get_token), advertised by the discovery endpoints. Default: PublicURL
	// with http(s) for ws(s), i.e. the service at the root of Stoa's host.
	ServiceURL string
	// APIKey and APISecret sign the access tokens. Required.
	APIKey, APISecret string
	// TokenTTL is the validity of minted tokens. Default 1h, as
	// lk-jwt-service; the SFU refreshes tokens of connected participants.
	TokenTTL time.Duration

	// HomeserverURL is the client-server API base URL of the homeserver
	// the watcher account lives on.
	HomeserverURL string
	// ServerName is that homeserver's server name.
	ServerName string
	// AccessToken selects bot mode: the bot account's access token. It
	// joins rooms it is invited to and follows them with /sync.
	AccessToken string
	// AppserviceRegistration selects application service mode: the path of
	// the registration YAML. Transactions are received on Stoa's HTTP port.
	AppserviceRegistration string

	// OpenIDBaseURLs maps a server name to the base URL used to verify its
	// users' OpenID tokens, instead of federation discovery over HTTPS
	// (for a homeserver on plain HTTP, or behind private DNS).
	OpenIDBaseURLs map[string]string
	// UnseenRooms is UnseenDeny (default) or UnseenLKJWT.
	UnseenRooms string
	// FullAccessHomeservers lists the server names whose users may create
	// calls under the UnseenLKJWT policy; "*" means all.
	FullAccessHomeservers []string
	// MembershipGrace is how long a connected participant may go without a
	// call membership before being removed. Default 30s.
	MembershipGrace time.Duration
	// AdminPowerLevel is the power level from which a user gets room-admin
	// rights in the SFU (mute others, remove participants). nil means the
	// room's kick level.
	AdminPowerLevel *int
	// Links, if set, lets room members from AdminPowerLevel create meeting
	// links for their room's call by sending "!stoa link" in the room (bot
	// or appservice mode). nil turns the command off.
	Links LinkMaker

	// Logger receives the service's logs. nil means slog.Default().
	Logger *slog.Logger
}
