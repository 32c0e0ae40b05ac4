package signalling

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/livekit/protocol/auth"
)

// Token refresh (PROTOCOL.md §2): a session outlives its token, so the server
// sends refresh_token right after the join and then every
// tokenRefreshInterval, each valid for at least tokenRefreshMinTTL. Values
// from LiveKit, pkg/service/roommanager.go.
const (
	tokenRefreshInterval = 5 * time.Minute
	tokenRefreshMinTTL   = 10 * time.Minute
)

var errNoClaims = errors.New("signalling: mint token: no claims")

// mintToken signs an HS256 access token with apiKey and secret, valid from
// now for ttl, which must be positive. It carries the claims of c that
// describe the participant and that LiveKit copies into a refresh token:
// identity, name, kind and kind details, metadata, attributes, the video
// grant, and the room configuration and preset. Other grants (SIP, agent,
// inference, observability) are left out. c is not modified, and the result
// shares no memory with it.
//
// Like LiveKit, it fails if the room configuration holds storage credentials
// (auth.ErrSensitiveCredentials).
func mintToken(apiKey, secret string, c *auth.ClaimGrants, ttl time.Duration) (string, error) {
	if c == nil {
		return "", errNoClaims
	}
	if ttl <= 0 {
		return "", fmt.Errorf("signalling: mint token: ttl %v is not positive", ttl)
	}
	at := auth.NewAccessToken(apiKey, secret).SetValidFor(ttl)
	g := at.GetGrants()
	g.Identity = c.Identity
	g.Name = c.Name
	g.Kind = c.Kind
	g.KindDetails = slices.Clone(c.KindDetails)
	g.Metadata = c.Metadata
	g.Attributes = maps.Clone(c.Attributes)
	g.Video = c.Video.Clone()
	g.RoomConfig = c.RoomConfig.Clone()
	g.RoomPreset = c.RoomPreset
	tok, err := at.ToJWT()
	if err != nil {
		return "", fmt.Errorf("signalling: mint token: %w", err)
	}
	return tok, nil
}

// verifyToken checks an access token against keys, which maps API keys to
// secrets and is only read, as LiveKit does (PROTOCOL.md §2). It returns the
// issuing API key, the claims and the expiry. Errors are 401 *httpErrors
// with LiveKit's texts.
func verifyToken(token string, keys map[string]string) (apiKey string, claims *auth.ClaimGrants, expiresAt time.Time, err error) {
	v, err := auth.ParseAPIToken(token)
	if err != nil {
		return "", nil, time.Time{}, errInvalidToken
	}
	secret := keys[v.APIKey()]
	if secret == "" {
		return "", nil, time.Time{}, errInvalidAPIKey
	}
	// Verify accepts HS256 only, requires iss to match and exp to be present,
	// and honours nbf, all with a 60 s leeway (protocol v1.54.0 auth/verifier.go).
	registered, claims, err := v.Verify(secret)
	if err != nil {
		return "", nil, time.Time{}, unauthorized(errInvalidToken.Msg + ": " + err.Error())
	}
	// A token without exp never expires. Verify rejects it today; keep the
	// check should a later protocol version relax that.
	if registered.ExpiresAt == nil {
		return "", nil, time.Time{}, unauthorized(errInvalidToken.Msg + ": exp claim is required")
	}
	return v.APIKey(), claims, registered.ExpiresAt.Time, nil
}

// refreshTTL returns the validity of a refresh token minted at now for a
// session whose token expires at expiresAt: what the token had left, and at
// least tokenRefreshMinTTL.
func refreshTTL(expiresAt, now time.Time) time.Duration {
	return max(expiresAt.Sub(now), tokenRefreshMinTTL)
}
