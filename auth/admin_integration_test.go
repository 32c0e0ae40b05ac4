package auth_test

// Room administration through LiveKit's RoomService with the tokens Stoa
// issues: a user whose Matrix power level reaches the room's kick level
// gets roomAdmin and may mute and remove others; a user at level 0 may not.
// It reuses the watcher integration test's environment (newITEnv): a real
// Dendrite, a real Stoa SFU and the authorisation service in bot mode.

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	lkauth "github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/webrtc/v4"
	"github.com/twitchtv/twirp"
	"maunium.net/go/mautrix/id"

	"github.com/stoa-rtc/stoa/auth/authtest"
)

// apiCallTimeout bounds one RoomService call.
const apiCallTimeout = 10 * time.Second

// adminPeer is an itPeer that also records the mutes and departures its
// SDK reports, and keeps the token Stoa issued to it.
type adminPeer struct {
	*itPeer
	jwt    string
	grant  *lkauth.ClaimGrants // the verified claims of jwt
	apiURL string              // the SFU's HTTP base URL, for RoomService

	mu    sync.Mutex      // guards mutes and left
	mutes []muteRecord    // OnTrackMuted and OnTrackUnmuted, local and remote
	left  map[string]bool // identities OnParticipantDisconnected reported
}

type muteRecord struct {
	identity, sid string
	muted         bool
}

// adminToken asks Stoa for u's token until its roomAdmin grant is admin.
// Stoa decides from the room state its view has synced, which may lag the
// power level change by a sync; a token that disagrees after itTimeout
// fails the test.
func adminToken(t *testing.T, env *itEnv, u *authtest.User, room id.RoomID, admin bool) (url, jwt string, grant *lkauth.ClaimGrants) {
	t.Helper()
	deadline := time.Now().Add(itTimeout)
	for {
		url, jwt = env.token(t, u, room)
		v, err := lkauth.ParseAPIToken(jwt)
		if err != nil {
			t.Fatalf("%s's token: %v", u.ID, err)
		}
		_, grant, err = v.Verify(itSecret)
		if err != nil {
			t.Fatalf("%s's token does not verify: %v", u.ID, err)
		}
		if grant.Video == nil {
			t.Fatalf("%s's token has no video grant", u.ID)
		}
		if grant.Video.RoomAdmin == admin {
			return url, jwt, grant
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's token has roomAdmin %v after %v, want %v", u.ID, grant.Video.RoomAdmin, itTimeout, admin)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// connectAdmin gets u a token whose roomAdmin is admin and joins the SFU
// room with it, as itEnv.connect does, with the extra callbacks recorded.
func connectAdmin(t *testing.T, env *itEnv, u *authtest.User, room id.RoomID, admin bool) *adminPeer {
	t.Helper()
	url, jwt, grant := adminToken(t, env, u, room, admin)
	p := &itPeer{identity: string(u.ID) + ":" + string(u.Device), disconnected: make(chan lksdk.DisconnectionReason, 1)}
	ap := &adminPeer{
		itPeer: p, jwt: jwt, grant: grant,
		apiURL: "http" + strings.TrimPrefix(url, "ws"), // ws→http, wss→https
		left:   map[string]bool{},
	}
	cb := lksdk.NewRoomCallback()
	cb.OnDisconnectedWithReason = func(r lksdk.DisconnectionReason) {
		select {
		case p.disconnected <- r:
		default:
		}
	}
	cb.OnTrackSubscribed = func(track *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, _ *lksdk.RemoteParticipant) {
		p.readers.Add(1)
		go func() {
			defer p.readers.Done()
			for {
				if _, _, err := track.ReadRTP(); err != nil {
					return
				}
				p.packets.Add(1)
			}
		}()
	}
	record := func(muted bool) func(lksdk.TrackPublication, lksdk.Participant) {
		return func(pub lksdk.TrackPublication, by lksdk.Participant) {
			ap.mu.Lock()
			ap.mutes = append(ap.mutes, muteRecord{by.Identity(), pub.SID(), muted})
			ap.mu.Unlock()
		}
	}
	cb.OnTrackMuted = record(true)
	cb.OnTrackUnmuted = record(false)
	cb.OnParticipantDisconnected = func(rp *lksdk.RemoteParticipant) {
		ap.mu.Lock()
		ap.left[rp.Identity()] = true
		ap.mu.Unlock()
	}
	p.room = lksdk.NewRoom(cb)
	ctx, cancel := context.WithTimeout(context.Background(), itTimeout)
	defer cancel()
	if err := p.room.JoinWithContextAndToken(ctx, url, jwt, lksdk.WithAutoSubscribe(true)); err != nil {
		t.Fatalf("%s joins: %v", p.identity, err)
	}
	if got := p.room.LocalParticipant.Identity(); got != p.identity {
		t.Fatalf("identity %q, want %q", got, p.identity)
	}
	t.Cleanup(p.close)
	return ap
}

// sawMute reports whether p's SDK reported identity's track sid muted.
func (p *adminPeer) sawMute(identity, sid string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Contains(p.mutes, muteRecord{identity, sid, true})
}

func (p *adminPeer) muteEvents() []muteRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.mutes)
}

func (p *adminPeer) sawLeave(identity string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.left[identity]
}

// stillConnected fails the test if the server disconnected p.
func (p *adminPeer) stillConnected(t *testing.T, env *itEnv) {
	t.Helper()
	select {
	case r := <-p.disconnected:
		t.Errorf("%s was disconnected (%s)", p.identity, r)
	default:
	}
	if !inSFU(env, p.itPeer) {
		t.Errorf("%s is not in the SFU room", p.identity)
	}
}

// as returns a context for one RoomService call that carries p's token as
// its bearer token.
func (p *adminPeer) as(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), apiCallTimeout)
	t.Cleanup(cancel)
	h := http.Header{}
	h.Set("Authorization", "Bearer "+p.jwt)
	ctx, err := twirp.WithHTTPRequestHeaders(ctx, h)
	if err != nil {
		t.Fatalf("WithHTTPRequestHeaders: %v", err)
	}
	return ctx
}

// waitUntil polls cond until it holds, failing the test after within.
func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wantTwirpCode fails the test unless err is a Twirp error with code.
func wantTwirpCode(t *testing.T, what string, err error, code twirp.ErrorCode) {
	t.Helper()
	var te twirp.Error
	if !errors.As(err, &te) {
		t.Errorf("%s: error %v, want Twirp code %q", what, err, code)
		return
	}
	if te.Code() != code {
		t.Errorf("%s: error %v (code %q), want code %q", what, err, te.Code(), code)
	}
}

// trackMuted returns whether identity's track sid is muted, as the SFU
// tells an admin through GetParticipant.
func trackMuted(t *testing.T, rs livekit.RoomService, admin *adminPeer, identity, sid string) bool {
	t.Helper()
	pi, err := rs.GetParticipant(admin.as(t), &livekit.RoomParticipantIdentity{Room: admin.grant.Video.Room, Identity: identity})
	if err != nil {
		t.Fatalf("GetParticipant %s: %v", identity, err)
	}
	for _, ti := range pi.Tracks {
		if ti.Sid == sid {
			return ti.Muted
		}
	}
	t.Fatalf("GetParticipant %s: no track %s in %v", identity, sid, pi.Tracks)
	return false
}

// TestRoomServiceAdminIntegration: in a call room whose kick level is 50,
// alice (power level 50) gets roomAdmin from Stoa and bob and carol (0) do
// not. With his token, bob can neither mute carol's microphone nor remove
// her (unauthenticated, LiveKit's answer for a missing grant), and she is
// unaffected; with hers, alice can do both, and carol and the others see
// it.
func TestRoomServiceAdminIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Dendrite")
	}
	env := newITEnv(t, "bot")
	hs := env.hs
	// The owner (power level 100) only sets the room up; it never joins the
	// call.
	owner := env.user(t, "owner")
	alice, bob, carol := env.user(t, "alice"), env.user(t, "bob"), env.user(t, "carol")
	room := env.callRoom(t, owner, alice, bob, carol)
	hs.SetPowerLevel(t, owner, room, alice, 50)
	// Memberships first, so that the enforcer keeps everyone.
	for _, u := range []*authtest.User{alice, bob, carol} {
		hs.SendCallMember(t, u, room)
	}

	pa := connectAdmin(t, env, alice, room, true)
	pb := connectAdmin(t, env, bob, room, false)
	pc := connectAdmin(t, env, carol, room, false)
	alias := pc.alias()
	for _, p := range []*adminPeer{pa, pb, pc} {
		if got := p.grant.Video.Room; got != alias || p.alias() != alias {
			t.Fatalf("%s: token for room %q, SDK room %q, want %q", p.identity, got, p.alias(), alias)
		}
		if p.grant.Identity != p.identity {
			t.Errorf("token identity %q, want %q", p.grant.Identity, p.identity)
		}
	}

	pc.publishAudio(t)
	pubs := pc.room.LocalParticipant.TrackPublications()
	if len(pubs) != 1 {
		t.Fatalf("carol has %d publications, want 1", len(pubs))
	}
	local, ok := pubs[0].(*lksdk.LocalTrackPublication)
	if !ok {
		t.Fatalf("carol's publication is a %T", pubs[0])
	}
	sid := local.SID()
	pa.waitPackets(t, 25, itTimeout)
	pb.waitPackets(t, 25, itTimeout)

	client := &http.Client{Timeout: apiCallTimeout}
	t.Cleanup(client.CloseIdleConnections)
	rs := livekit.NewRoomServiceProtobufClient(pc.apiURL, client)

	t.Run("level 0 refused", func(t *testing.T) {
		_, err := rs.MutePublishedTrack(pb.as(t), &livekit.MuteRoomTrackRequest{
			Room: pb.grant.Video.Room, Identity: pc.identity, TrackSid: sid, Muted: true,
		})
		wantTwirpCode(t, "bob mutes carol's track", err, twirp.Unauthenticated)
		_, err = rs.RemoveParticipant(pb.as(t), &livekit.RoomParticipantIdentity{Room: pb.grant.Video.Room, Identity: pc.identity})
		wantTwirpCode(t, "bob removes carol", err, twirp.Unauthenticated)

		// Carol is unaffected: the SFU refused before acting, so her track
		// is unmuted and she is there, and alice still gets her audio.
		if trackMuted(t, rs, pa, pc.identity, sid) {
			t.Error("the SFU shows carol's track muted")
		}
		if local.IsMuted() {
			t.Error("carol's SDK has its track muted")
		}
		pa.waitPackets(t, 25, itTimeout)
		for _, p := range []*adminPeer{pa, pb, pc} {
			if m := p.muteEvents(); len(m) > 0 {
				t.Errorf("%s saw mutes %v", p.identity, m)
			}
			p.stillConnected(t, env)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("level 50 mutes", func(t *testing.T) {
		res, err := rs.MutePublishedTrack(pa.as(t), &livekit.MuteRoomTrackRequest{
			Room: pa.grant.Video.Room, Identity: pc.identity, TrackSid: sid, Muted: true,
		})
		if err != nil {
			t.Fatalf("alice mutes carol's track: %v", err)
		}
		if res.GetTrack().GetSid() != sid || !res.GetTrack().GetMuted() {
			t.Errorf("MutePublishedTrack = %v, want track %s muted", res.GetTrack(), sid)
		}
		waitUntil(t, "carol's SDK to mute its track", itTimeout, func() bool {
			return local.IsMuted() && pc.sawMute(pc.identity, sid)
		})
		for _, p := range []*adminPeer{pa, pb} {
			waitUntil(t, p.identity+" to see carol's track muted", itTimeout, func() bool { return p.sawMute(pc.identity, sid) })
		}
		if !trackMuted(t, rs, pa, pc.identity, sid) {
			t.Error("the SFU shows carol's track unmuted")
		}
		pc.stillConnected(t, env)
	})

	t.Run("level 50 removes", func(t *testing.T) {
		// The grant is for this room only.
		_, err := rs.RemoveParticipant(pa.as(t), &livekit.RoomParticipantIdentity{Room: pa.grant.Video.Room + "-other", Identity: pc.identity})
		wantTwirpCode(t, "alice removes carol from another room", err, twirp.Unauthenticated)

		if _, err := rs.RemoveParticipant(pa.as(t), &livekit.RoomParticipantIdentity{Room: pa.grant.Video.Room, Identity: pc.identity}); err != nil {
			t.Fatalf("alice removes carol: %v", err)
		}
		if r := pc.waitDisconnected(t, itTimeout); r != lksdk.ParticipantRemoved {
			t.Errorf("carol disconnected with %q, want %q", r, lksdk.ParticipantRemoved)
		}
		for _, p := range []*adminPeer{pa, pb} {
			waitUntil(t, p.identity+" to see carol leave", itTimeout, func() bool { return p.sawLeave(pc.identity) })
		}
		waitUntil(t, "carol to leave the SFU room", itTimeout, func() bool { return !inSFU(env, pc.itPeer) })
		_, err = rs.GetParticipant(pa.as(t), &livekit.RoomParticipantIdentity{Room: pa.grant.Video.Room, Identity: pc.identity})
		wantTwirpCode(t, "GetParticipant carol after her removal", err, twirp.NotFound)
		pa.stillConnected(t, env)
		pb.stillConnected(t, env)
	})

	// Every removal was the RoomService's: the enforcer removed no one.
	for _, p := range []*adminPeer{pa, pb, pc} {
		if env.sfu.removed(p.identity) {
			t.Errorf("the enforcer removed %s", p.identity)
		}
	}
}
