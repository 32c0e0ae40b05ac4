package signalling

import (
	"errors"
	"reflect"
	"testing"
	"testing/synctest"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
)

func TestMintToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := true
		orig := newToken(t, func(at *auth.AccessToken) {
			at.SetVideoGrant(&auth.VideoGrant{
				RoomJoin: true, Room: "room1", CanUpdateOwnMetadata: &tr, Hidden: true,
				CanPublishSources: []string{"camera", "microphone"},
			}).
				SetKind(livekit.ParticipantInfo_AGENT).
				SetKindDetail(livekit.ParticipantInfo_CLOUD_AGENT).
				SetMetadata("meta").
				SetAttributes(map[string]string{"k": "v"}).
				SetRoomPreset("preset").
				SetSIPGrant(&auth.SIPGrant{Admin: true}).
				SetValidFor(time.Hour)
		})
		p, err := parseJoin(newRequest("/rtc?access_token="+orig), testKeys(), false)
		if err != nil {
			t.Fatal(err)
		}
		before := p.Claims.Clone()

		time.Sleep(50 * time.Minute)
		ttl := refreshTTL(p.ExpiresAt, time.Now())
		if ttl != tokenRefreshMinTTL {
			t.Errorf("refreshTTL 10 min before exp = %v, want %v", ttl, tokenRefreshMinTTL)
		}
		tok, err := mintToken(p.APIKey, testSecret, p.Claims, ttl)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(p.Claims, before) {
			t.Errorf("mintToken changed its claims: %+v, was %+v", p.Claims, before)
		}

		// The refresh token is accepted at resume, with the same claims.
		time.Sleep(5 * time.Minute)
		q, err := parseJoin(newRequest("/rtc?reconnect=1&sid=PA_x&access_token="+tok), testKeys(), false)
		if err != nil {
			t.Fatalf("parseJoin(refresh token): %v", err)
		}
		if want := time.Now().Add(5 * time.Minute); !q.ExpiresAt.Equal(want) {
			t.Errorf("ExpiresAt %v, want %v", q.ExpiresAt, want)
		}
		want := before.Clone()
		want.SIP = nil // not carried over
		if !reflect.DeepEqual(q.Claims, want) {
			t.Errorf("claims %+v\nwant %+v", q.Claims, want)
		}
		if q.Kind != livekit.ParticipantInfo_AGENT || !q.Permission.GetHidden() || len(q.Permission.GetCanPublishSources()) != 2 {
			t.Errorf("kind %v permission %v", q.Kind, q.Permission)
		}
	})
}

func TestMintTokenErrors(t *testing.T) {
	c := &auth.ClaimGrants{Identity: "alice", Video: &auth.VideoGrant{RoomJoin: true, Room: "room1"}}
	if _, err := mintToken(testKey, testSecret, nil, time.Minute); !errors.Is(err, errNoClaims) {
		t.Errorf("nil claims: %v", err)
	}
	if _, err := mintToken(testKey, testSecret, c, 0); err == nil {
		t.Error("zero ttl: no error")
	}
	if _, err := mintToken(testKey, "", c, time.Minute); !errors.Is(err, auth.ErrKeysMissing) {
		t.Errorf("no secret: %v", err)
	}
	withCreds := *c
	withCreds.RoomConfig = &auth.RoomConfiguration{Egress: &livekit.RoomEgress{Room: &livekit.RoomCompositeEgressRequest{
		StreamOutputs: []*livekit.StreamOutput{{Urls: []string{"rtmp://example.com/key"}}},
	}}}
	if _, err := mintToken(testKey, testSecret, &withCreds, time.Minute); !errors.Is(err, auth.ErrSensitiveCredentials) {
		t.Errorf("credentials in room config: %v", err)
	}
}

func TestRefreshTTL(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		expiresAt time.Time
		want      time.Duration
	}{
		{now.Add(time.Hour), time.Hour},
		{now.Add(10 * time.Minute), 10 * time.Minute},
		{now.Add(time.Minute), tokenRefreshMinTTL},
		{now.Add(-time.Hour), tokenRefreshMinTTL}, // the session outlived its token
		{time.Time{}, tokenRefreshMinTTL},
	} {
		if got := refreshTTL(tt.expiresAt, now); got != tt.want {
			t.Errorf("refreshTTL(%v) = %v, want %v", tt.expiresAt, got, tt.want)
		}
	}
}
