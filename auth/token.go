package auth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// grant is what a minted access token allows.
type grant struct {
	Identity string // SFU participant identity, the JWT's sub
	Alias    string // SFU room name
	// Admin adds roomAdmin: the holder may mute others' tracks and remove
	// participants through RoomService with this token. It is given to
	// users whose Matrix power level reaches the admin level.
	Admin bool
}

// mintToken signs an access token for g as lk-jwt-service's getJoinToken
// does (MATRIXRTC.md §3.7): HS256 with the API key as issuer, sub and
// identity set to the identity, valid for ttl, and the video grant
// {roomJoin, room, canPublish, canSubscribe, canUpdateOwnMetadata}, plus
// roomAdmin for admins. It carries no name, metadata or attributes, so its
// payload stays ASCII as long as the identity is (Element Call decodes it
// with atob).
//
// The JWT is built with golang-jwt, the library livekit/protocol itself
// signs with, rather than livekit/protocol/auth: that package pulls in pion,
// and the Matrix side of Stoa never links the media stack.
func mintToken(key, secret string, ttl time.Duration, g grant) (string, error) {
	if key == "" || secret == "" {
		return "", errors.New("auth: minting access token: no API key or secret")
	}
	now := time.Now()
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    key,
			Subject:   g.Identity,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Video: videoGrant{
			RoomJoin:             true,
			Room:                 g.Alias,
			RoomAdmin:            g.Admin,
			CanPublish:           true,
			CanSubscribe:         true,
			CanUpdateOwnMetadata: true,
		},
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		return "", fmt.Errorf("auth: minting access token: %w", err)
	}
	return signed, nil
}

// tokenClaims are LiveKit's access token claims as far as Stoa sets them:
// the grant object sits under "video" (PROTOCOL.md §2).
type tokenClaims struct {
	jwt.RegisteredClaims
	Video videoGrant `json:"video"`
}

type videoGrant struct {
	RoomJoin             bool   `json:"roomJoin"`
	Room                 string `json:"room"`
	RoomAdmin            bool   `json:"roomAdmin,omitempty"`
	CanPublish           bool   `json:"canPublish"`
	CanSubscribe         bool   `json:"canSubscribe"`
	CanUpdateOwnMetadata bool   `json:"canUpdateOwnMetadata"`
}

// atobSafe reports whether Element Call can read jwt's payload: it
// decodes it with atob, which knows only the standard base64 alphabet,
// so the payload must have no '-' or '_' (bytes '>', '?', '~' or DEL at
// offset 2 mod 3, or any non-ASCII byte, MATRIXRTC.md §3.8), and must be
// ASCII for JSON.parse of the binary string to see the same text.
func atobSafe(jwt string) bool {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 || strings.ContainsAny(parts[1], "-_") {
		return false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return false
	}
	for _, c := range payload {
		if c >= 0x80 {
			return false
		}
	}
	return true
}
