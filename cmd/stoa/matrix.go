package main

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"slices"
	"sync/atomic"
	"time"

	"github.com/stoa-rtc/stoa/auth"
	"github.com/stoa-rtc/stoa/signalling"
)

// matrixConfig is the "matrix" section: the MatrixRTC authorisation
// service (a drop-in for lk-jwt-service). README.md documents each key.
type matrixConfig struct {
	// PublicURL is the WebSocket URL clients are told to join
	// (wss://stoa.example.org). Default: ws:// on the first bind address.
	PublicURL string `yaml:"public_url"`
	// ServiceURL is where clients reach /sfu/get and /get_token, as
	// advertised by discovery. Default: PublicURL with http(s).
	ServiceURL string `yaml:"service_url"`
	// HomeserverURL and ServerName name the homeserver of the watcher
	// account.
	HomeserverURL string `yaml:"homeserver_url"`
	ServerName    string `yaml:"server_name"`
	// AccessToken selects bot mode.
	AccessToken string `yaml:"access_token"`
	// AppserviceRegistration selects application service mode.
	AppserviceRegistration string `yaml:"appservice_registration"`
	// OpenIDBaseURLs maps server names to the base URL used to verify their
	// OpenID tokens.
	OpenIDBaseURLs map[string]string `yaml:"openid_base_urls"`
	// UnseenRooms is "deny" (default) or "lk-jwt".
	UnseenRooms string `yaml:"unseen_rooms"`
	// FullAccessHomeservers may create calls under the lk-jwt policy.
	FullAccessHomeservers []string `yaml:"full_access_homeservers"`
	// MembershipGrace is how long a participant may be connected without a
	// call membership. Default 30s.
	MembershipGrace time.Duration `yaml:"membership_grace"`
	// AdminPowerLevel grants room-admin rights in the SFU from this power
	// level. Default: the room's kick level.
	AdminPowerLevel *int `yaml:"admin_power_level"`
}

// enabled reports whether the section asks for the authorisation service.
func (m *matrixConfig) enabled() bool {
	return m.HomeserverURL != "" || m.UnseenRooms == auth.UnseenLKJWT || m.AccessToken != "" || m.AppserviceRegistration != ""
}

// validateMatrix checks the section; called by validate.
func (c *config) validateMatrix() error {
	m := &c.Matrix
	if !m.enabled() {
		return nil
	}
	if m.UnseenRooms != "" && m.UnseenRooms != auth.UnseenDeny && m.UnseenRooms != auth.UnseenLKJWT {
		return fmt.Errorf("matrix.unseen_rooms: %q is not deny or lk-jwt", m.UnseenRooms)
	}
	if m.AccessToken != "" && m.AppserviceRegistration != "" {
		return errors.New("matrix: set access_token (bot mode) or appservice_registration, not both")
	}
	if (m.AccessToken != "" || m.AppserviceRegistration != "") && (m.HomeserverURL == "" || m.ServerName == "") {
		return errors.New("matrix: homeserver_url and server_name are required with access_token or appservice_registration")
	}
	for _, u := range []struct{ key, v string }{{"public_url", m.PublicURL}, {"service_url", m.ServiceURL}, {"homeserver_url", m.HomeserverURL}} {
		if u.v == "" {
			continue
		}
		if p, err := url.Parse(u.v); err != nil || p.Host == "" {
			return fmt.Errorf("matrix.%s: %q is not an absolute URL", u.key, u.v)
		}
	}
	if m.MembershipGrace < 0 {
		return fmt.Errorf("matrix.membership_grace: %v is negative", m.MembershipGrace)
	}
	return nil
}

// applyLKEnv reads lk-jwt-service's environment variables (LIVEKIT_URL,
// LIVEKIT_KEY, LIVEKIT_SECRET, LIVEKIT_FULL_ACCESS_HOMESERVERS, ...), for
// admins migrating from it: they enable the service with its behaviour,
// and their key joins Stoa's keys.
func (c *config) applyLKEnv(getenv func(string) string) error {
	lk, err := auth.ConfigFromLKEnv(getenv)
	if err != nil {
		return err
	}
	if lk.PublicURL == "" {
		return nil
	}
	m := &c.Matrix
	c.lkKey = lk.APIKey
	if c.Keys == nil {
		c.Keys = map[string]string{}
	}
	if s, ok := c.Keys[lk.APIKey]; ok && s != lk.APISecret {
		return fmt.Errorf("LIVEKIT_KEY %q is also configured with a different secret", lk.APIKey)
	}
	c.Keys[lk.APIKey] = lk.APISecret
	if m.PublicURL == "" {
		m.PublicURL = lk.PublicURL
	}
	if m.UnseenRooms == "" {
		m.UnseenRooms = lk.UnseenRooms
	}
	if len(m.FullAccessHomeservers) == 0 {
		m.FullAccessHomeservers = lk.FullAccessHomeservers
	}
	return nil
}

// authConfig returns the authorisation service's Config, or false when the
// service is not configured. httpAddr is the address serve listens on.
func (c *config) authConfig(httpAddr net.Addr, logger *slog.Logger) (auth.Config, bool) {
	m := &c.Matrix
	if !m.enabled() {
		return auth.Config{}, false
	}
	key := c.lkKey
	if key == "" {
		key = slices.Sorted(maps.Keys(c.Keys))[0]
	}
	public := m.PublicURL
	if public == "" {
		public = "ws://" + c.localHostPort(httpAddr)
	}
	return auth.Config{
		PublicURL:              public,
		ServiceURL:             m.ServiceURL,
		APIKey:                 key,
		APISecret:              c.Keys[key],
		HomeserverURL:          m.HomeserverURL,
		ServerName:             m.ServerName,
		AccessToken:            m.AccessToken,
		AppserviceRegistration: m.AppserviceRegistration,
		OpenIDBaseURLs:         maps.Clone(m.OpenIDBaseURLs),
		UnseenRooms:            m.UnseenRooms,
		FullAccessHomeservers:  slices.Clone(m.FullAccessHomeservers),
		MembershipGrace:        m.MembershipGrace,
		AdminPowerLevel:        m.AdminPowerLevel,
		Logger:                 logger.With("component", "auth"),
	}, true
}

// authRoutes are the paths of the authorisation service on Stoa's port.
func authRoutes() []string {
	return []string{
		"/sfu/get", "/get_token", "/healthz", "/delegate_delayed_leave",
		"/_matrix/", "/.well-known/matrix/", "/transactions/",
	}
}

// observerRelay passes participant events to the authorisation service,
// which is built after the signalling server it observes.
type observerRelay struct{ to atomic.Pointer[auth.Service] }

func (o *observerRelay) ParticipantJoined(room, identity string) {
	if s := o.to.Load(); s != nil {
		s.ParticipantJoined(room, identity)
	}
}

func (o *observerRelay) ParticipantLeft(room, identity string) {
	if s := o.to.Load(); s != nil {
		s.ParticipantLeft(room, identity)
	}
}

var _ signalling.Observer = (*observerRelay)(nil)
