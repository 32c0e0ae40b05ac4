package auth

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	lkauth "github.com/livekit/protocol/auth"
)

func TestMintToken(t *testing.T) {
	for _, admin := range []bool{false, true} {
		jwt, err := mintToken("APIkey", "secret-secret-secret-secret-secret", 42*time.Minute,
			grant{Identity: "@alice:example.org:DEV", Alias: "O8437W3+jmzMVjoIP3tNwbm+XxHQk2iKpOA7aqw3qSc", Admin: admin})
		if err != nil {
			t.Fatal(err)
		}
		claims, grants := verifyJWT(t, jwt, "APIkey", "secret-secret-secret-secret-secret")
		if claims.Subject != "@alice:example.org:DEV" || grants.Identity != "@alice:example.org:DEV" {
			t.Errorf("sub %q identity %q", claims.Subject, grants.Identity)
		}
		if got := claims.ExpiresAt.Sub(claims.IssuedAt.Time); got != 42*time.Minute {
			t.Errorf("validity %v, want 42m", got)
		}
		v := grants.Video
		if v == nil || !v.RoomJoin || v.Room != "O8437W3+jmzMVjoIP3tNwbm+XxHQk2iKpOA7aqw3qSc" ||
			!isTrue(v.CanPublish) || !isTrue(v.CanSubscribe) || !isTrue(v.CanUpdateOwnMetadata) ||
			v.RoomCreate || v.RoomAdmin != admin {
			t.Errorf("video grant %+v (admin %v)", v, admin)
		}
		if grants.Name != "" || grants.Metadata != "" || len(grants.Attributes) != 0 {
			t.Errorf("token carries name, metadata or attributes: %+v", grants)
		}
		if !atobSafe(jwt) {
			t.Errorf("payload of %s is not atob-safe", jwt)
		}
	}
}

func TestMintTokenNoKey(t *testing.T) {
	if _, err := mintToken("", "", time.Hour, grant{Identity: "x", Alias: "y"}); err == nil {
		t.Error("minted without a key")
	}
}

func TestAtobSafe(t *testing.T) {
	tests := []struct {
		payload string
		want    bool
	}{
		{"eyJhIjoxfQ", true},       // {"a":1}
		{"eyJhIjoiPz8ifQ", true},   // {"a":"??"}: no '?' at offset 2 mod 3
		{"eyJhIjoiPz8_In0", false}, // {"a":"???"}: '_' from the third '?'
		{"eyJhIjoifn5-In0", false}, // {"a":"~~~"}: '-' from the third '~'
		{"eyJhIjoiw6kifQ", false},  // {"a":"é"}: non-ASCII
	}
	for _, tt := range tests {
		jwt := "h." + tt.payload + ".s"
		if got := atobSafe(jwt); got != tt.want {
			t.Errorf("atobSafe(%s) = %v, want %v", jwt, got, tt.want)
		}
	}
	if atobSafe("not-a-jwt") {
		t.Error("atobSafe of a non-JWT")
	}
}

// verifyJWT checks jwt's signature with key and secret and returns its
// claims.
func verifyJWT(t *testing.T, jwt, key, secret string) (*jwt.RegisteredClaims, *lkauth.ClaimGrants) {
	t.Helper()
	v, err := lkauth.ParseAPIToken(jwt)
	if err != nil {
		t.Fatalf("ParseAPIToken: %v", err)
	}
	if v.APIKey() != key {
		t.Errorf("issuer %q, want %q", v.APIKey(), key)
	}
	claims, grants, err := v.Verify(secret)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if strings.Count(jwt, ".") != 2 {
		t.Fatalf("not a JWT: %s", jwt)
	}
	return claims, grants
}

func isTrue(b *bool) bool { return b != nil && *b }
