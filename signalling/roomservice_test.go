package signalling_test

// RoomService (PROTOCOL.md §6.1) driven by LiveKit's own clients: the Go
// server SDK's RoomServiceClient, the generated Twirp protobuf client, and
// SDK participants that watch the effects.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/twitchtv/twirp"
	"google.golang.org/protobuf/proto"
)

// apiTimeout bounds one RoomService call.
const apiTimeout = 5 * time.Second

// roomClient returns the Go SDK's RoomService client for s, which mints a
// token with just the grant each call needs.
func (s *testServer) roomClient() *lksdk.RoomServiceClient {
	return lksdk.NewRoomServiceClient(s.url, s.key, s.secret)
}

// httpURL is the server's base URL for plain HTTP requests.
func (s *testServer) httpURL() string {
	return "http" + strings.TrimPrefix(s.url, "ws")
}

// apiToken mints an API token (no identity) with grant.
func (s *testServer) apiToken(t *testing.T, grant *auth.VideoGrant) string {
	t.Helper()
	tok, err := auth.NewAccessToken(s.key, s.secret).SetVideoGrant(grant).SetValidFor(time.Minute).ToJWT()
	if err != nil {
		t.Fatalf("mint API token: %v", err)
	}
	return tok
}

// twirpClient returns the generated protobuf client, which sends whatever
// Authorization header the context carries (see withBearer).
func (s *testServer) twirpClient() livekit.RoomService {
	return livekit.NewRoomServiceProtobufClient(s.httpURL(), http.DefaultClient)
}

// withBearer returns a context for one call with token as its bearer token;
// an empty token sends no Authorization header.
func withBearer(t *testing.T, token string) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	t.Cleanup(cancel)
	if token == "" {
		return ctx
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	ctx, err := twirp.WithHTTPRequestHeaders(ctx, h)
	if err != nil {
		t.Fatalf("WithHTTPRequestHeaders: %v", err)
	}
	return ctx
}

// apiCtx returns a context bounding one call.
func apiCtx(t *testing.T) context.Context { return withBearer(t, "") }

// twirpCode returns the Twirp code of err, or "" if it is not a Twirp error.
func twirpCode(err error) twirp.ErrorCode {
	var te twirp.Error
	if errors.As(err, &te) {
		return te.Code()
	}
	return ""
}

// wantCode fails the test unless err is a Twirp error with code.
func wantCode(t *testing.T, what string, err error, code twirp.ErrorCode) {
	t.Helper()
	if got := twirpCode(err); got != code {
		t.Errorf("%s: error %v (code %q), want code %q", what, err, got, code)
	}
}

// eventually polls cond until it holds, failing the test after mediaTimeout.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(mediaTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// watcher is an SDK participant that records what the helper's participant
// does not: why it was disconnected and the room metadata it was told.
type watcher struct {
	identity string
	room     *lksdk.Room

	mu       sync.Mutex // guards the following fields
	reasons  []lksdk.DisconnectionReason
	metadata []string
}

// watch joins room as identity and disconnects it when the test ends.
func (s *testServer) watch(t *testing.T, room, identity string) *watcher {
	t.Helper()
	w := &watcher{identity: identity}
	cb := lksdk.NewRoomCallback()
	cb.OnDisconnectedWithReason = func(r lksdk.DisconnectionReason) {
		w.mu.Lock()
		w.reasons = append(w.reasons, r)
		w.mu.Unlock()
	}
	cb.OnRoomMetadataChanged = func(md string) {
		w.mu.Lock()
		w.metadata = append(w.metadata, md)
		w.mu.Unlock()
	}
	w.room = lksdk.NewRoom(cb)
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	if err := w.room.JoinWithContextAndToken(ctx, s.url, s.token(t, room, identity),
		lksdk.WithAutoSubscribe(false), lksdk.WithConnectTimeout(connectTimeout)); err != nil {
		t.Fatalf("%s: join %s: %v", identity, room, err)
	}
	t.Cleanup(w.room.Disconnect)
	return w
}

// waitDisconnected waits until the SDK reports a disconnection with reason
// and the server's raw reason raw.
func (w *watcher) waitDisconnected(t *testing.T, reason lksdk.DisconnectionReason, raw livekit.DisconnectReason) {
	t.Helper()
	eventually(t, w.identity+" disconnected with "+string(reason), func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return slices.Contains(w.reasons, reason)
	})
	if got := w.room.DisconnectReason(); got != raw {
		t.Errorf("%s: disconnect reason %v, want %v", w.identity, got, raw)
	}
}

func identities(ps []*livekit.ParticipantInfo) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Identity)
	}
	return out
}

func TestRoomServiceCreateListGet(t *testing.T) {
	srv := startServer(t)
	rc := srv.roomClient()
	name := roomName(t, "room")

	created, err := rc.CreateRoom(apiCtx(t), &livekit.CreateRoomRequest{
		Name: name, EmptyTimeout: 120, DepartureTimeout: 30, MaxParticipants: 10, Metadata: "first",
	})
	if err != nil {
		t.Fatalf("CreateRoom: %v", err)
	}
	if !strings.HasPrefix(created.Sid, "RM_") || created.Name != name || created.EmptyTimeout != 120 ||
		created.DepartureTimeout != 30 || created.MaxParticipants != 10 || created.Metadata != "first" {
		t.Errorf("CreateRoom = %v, want the room with the settings asked for", created)
	}
	again, err := rc.CreateRoom(apiCtx(t), &livekit.CreateRoomRequest{Name: name})
	if err != nil {
		t.Fatalf("CreateRoom again: %v", err)
	}
	if again.Sid != created.Sid || again.CreationTime != created.CreationTime || again.Metadata != "first" {
		t.Errorf("CreateRoom again = %v, want the same room %v", again, created)
	}

	other := roomName(t, "other")
	if _, err := rc.CreateRoom(apiCtx(t), &livekit.CreateRoomRequest{Name: other}); err != nil {
		t.Fatalf("CreateRoom(%s): %v", other, err)
	}
	list, err := rc.ListRooms(apiCtx(t), &livekit.ListRoomsRequest{})
	if err != nil {
		t.Fatalf("ListRooms: %v", err)
	}
	var names []string
	for _, r := range list.Rooms {
		names = append(names, r.Name)
	}
	if !slices.Contains(names, name) || !slices.Contains(names, other) {
		t.Errorf("ListRooms names %v, want %s and %s among them", names, name, other)
	}
	list, err = rc.ListRooms(apiCtx(t), &livekit.ListRoomsRequest{Names: []string{name, "no-such-room"}})
	if err != nil {
		t.Fatalf("ListRooms(names): %v", err)
	}
	if len(list.Rooms) != 1 || list.Rooms[0].Sid != created.Sid {
		t.Errorf("ListRooms([%s]) = %v, want just that room", name, list.Rooms)
	}

	// A plain participant token (no roomCreate) joins the room created by
	// the API, and sees its metadata.
	a := srv.join(t, name, "alice")
	if md := a.room.Metadata(); md != "first" {
		t.Errorf("room metadata at join %q, want %q", md, "first")
	}
	ps, err := rc.ListParticipants(apiCtx(t), &livekit.ListParticipantsRequest{Room: name})
	if err != nil {
		t.Fatalf("ListParticipants: %v", err)
	}
	if got := identities(ps.Participants); !slices.Equal(got, []string{"alice"}) {
		t.Errorf("ListParticipants = %v, want [alice]", got)
	}
	pi, err := rc.GetParticipant(apiCtx(t), &livekit.RoomParticipantIdentity{Room: name, Identity: "alice"})
	if err != nil {
		t.Fatalf("GetParticipant: %v", err)
	}
	if pi.Identity != "alice" || pi.Sid != a.room.LocalParticipant.SID() {
		t.Errorf("GetParticipant = %v, want alice with sid %s", pi, a.room.LocalParticipant.SID())
	}
	_, err = rc.GetParticipant(apiCtx(t), &livekit.RoomParticipantIdentity{Room: name, Identity: "nobody"})
	wantCode(t, "GetParticipant(nobody)", err, twirp.NotFound)
	_, err = rc.GetParticipant(apiCtx(t), &livekit.RoomParticipantIdentity{Room: "no-such-room", Identity: "alice"})
	wantCode(t, "GetParticipant(no room)", err, twirp.NotFound)
	ps, err = rc.ListParticipants(apiCtx(t), &livekit.ListParticipantsRequest{Room: "no-such-room"})
	if err != nil || len(ps.Participants) != 0 {
		t.Errorf("ListParticipants(no room) = %v, %v; want an empty list", ps, err)
	}
}

func TestRoomServiceMaxParticipants(t *testing.T) {
	srv := startServer(t)
	name := roomName(t, "room")
	if _, err := srv.roomClient().CreateRoom(apiCtx(t), &livekit.CreateRoomRequest{Name: name, MaxParticipants: 1}); err != nil {
		t.Fatalf("CreateRoom: %v", err)
	}
	srv.join(t, name, "first")

	resp, err := http.Get(srv.httpURL() + "/rtc/validate?access_token=" + srv.token(t, name, "second"))
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("validate for a full room: %d %q, want 503", resp.StatusCode, body)
	}

	late := srv.newParticipant(t, "second")
	if err := late.connect(srv.token(t, name, "second")); err == nil {
		late.close()
		t.Fatal("a join over max_participants succeeded")
	}
	// The identity already there may still reconnect in its place.
	srv.join(t, name, "first")
}

func TestRoomServiceRemoveParticipant(t *testing.T) {
	srv := startServer(t)
	rc := srv.roomClient()
	name := roomName(t, "room")
	// other joins first: the SDK reports only later arrivals as connected.
	other := srv.join(t, name, "other")
	victim := srv.watch(t, name, "victim")
	other.waitFor(time.Now().Add(mediaTimeout), "victim to be seen", func() bool { return other.connected["victim"] })

	if _, err := rc.RemoveParticipant(apiCtx(t), &livekit.RoomParticipantIdentity{Room: name, Identity: "victim"}); err != nil {
		t.Fatalf("RemoveParticipant: %v", err)
	}
	victim.waitDisconnected(t, lksdk.ParticipantRemoved, livekit.DisconnectReason_PARTICIPANT_REMOVED)
	other.waitFor(time.Now().Add(mediaTimeout), "victim to leave", func() bool { return other.disconnected["victim"] })

	_, err := rc.RemoveParticipant(apiCtx(t), &livekit.RoomParticipantIdentity{Room: name, Identity: "victim"})
	wantCode(t, "RemoveParticipant again", err, twirp.NotFound)
	_, err = rc.GetParticipant(apiCtx(t), &livekit.RoomParticipantIdentity{Room: name, Identity: "victim"})
	wantCode(t, "GetParticipant after removal", err, twirp.NotFound)
	ps, err := rc.ListParticipants(apiCtx(t), &livekit.ListParticipantsRequest{Room: name})
	if err != nil {
		t.Fatalf("ListParticipants: %v", err)
	}
	if got := identities(ps.Participants); !slices.Equal(got, []string{"other"}) {
		t.Errorf("ListParticipants after removal = %v, want [other]", got)
	}
}

func TestRoomServiceMutePublishedTrack(t *testing.T) {
	srv := startServer(t)
	rc := srv.roomClient()
	name := roomName(t, "room")
	pub := srv.join(t, name, "pub")
	sub := srv.join(t, name, "sub")
	m := pub.publishMedia(false, true)
	sid := m.audioPub.SID()
	sub.waitFor(time.Now().Add(mediaTimeout), "the microphone track", func() bool { return sub.published["pub"][sid] })

	res, err := rc.MutePublishedTrack(apiCtx(t), &livekit.MuteRoomTrackRequest{Room: name, Identity: "pub", TrackSid: sid, Muted: true})
	if err != nil {
		t.Fatalf("MutePublishedTrack: %v", err)
	}
	if res.Track.GetSid() != sid || !res.Track.GetMuted() {
		t.Errorf("MutePublishedTrack = %v, want track %s muted", res.Track, sid)
	}
	eventually(t, "the publisher's SDK to mute its track", m.audioPub.IsMuted)
	sub.waitFor(time.Now().Add(mediaTimeout), "the track to be muted", func() bool {
		return slices.Contains(sub.mutes, muteEvent{"pub", sid, true})
	})
	pi, err := rc.GetParticipant(apiCtx(t), &livekit.RoomParticipantIdentity{Room: name, Identity: "pub"})
	if err != nil {
		t.Fatalf("GetParticipant: %v", err)
	}
	for _, ti := range pi.Tracks {
		if ti.Sid == sid && !ti.Muted {
			t.Errorf("GetParticipant shows track %s unmuted", sid)
		}
	}

	_, err = rc.MutePublishedTrack(apiCtx(t), &livekit.MuteRoomTrackRequest{Room: name, Identity: "pub", TrackSid: sid, Muted: false})
	wantCode(t, "remote unmute", err, twirp.FailedPrecondition)
	_, err = rc.MutePublishedTrack(apiCtx(t), &livekit.MuteRoomTrackRequest{Room: name, Identity: "pub", TrackSid: "TR_nope", Muted: true})
	wantCode(t, "mute of an unknown track", err, twirp.NotFound)
	_, err = rc.MutePublishedTrack(apiCtx(t), &livekit.MuteRoomTrackRequest{Room: name, Identity: "nobody", TrackSid: sid, Muted: true})
	wantCode(t, "mute for an unknown participant", err, twirp.NotFound)
}

func TestRoomServiceSendData(t *testing.T) {
	srv := startServer(t)
	rc := srv.roomClient()
	name := roomName(t, "room")
	ps := srv.joinAll(t, name, "a", "b")
	a, b := ps[0], ps[1]

	got := func(p *participant, payload string) bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return slices.Contains(p.data, dataEvent{sender: "", payload: payload})
	}
	// The data channels open shortly after the join: send until it arrives.
	send := func(req *livekit.SendDataRequest, until func() bool) {
		t.Helper()
		deadline := time.Now().Add(mediaTimeout)
		for !until() {
			if time.Now().After(deadline) {
				t.Fatalf("data %q never arrived", req.Data)
			}
			if _, err := rc.SendData(apiCtx(t), req); err != nil {
				t.Fatalf("SendData: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	send(&livekit.SendDataRequest{Room: name, Data: []byte("to all"), Kind: livekit.DataPacket_RELIABLE},
		func() bool { return got(a, "to all") && got(b, "to all") })
	send(&livekit.SendDataRequest{Room: name, Data: []byte("to b"), Kind: livekit.DataPacket_RELIABLE, DestinationIdentities: []string{"b"}},
		func() bool { return got(b, "to b") })
	// One more to all, sent after the one to b, must reach a first.
	send(&livekit.SendDataRequest{Room: name, Data: []byte("after"), Kind: livekit.DataPacket_RELIABLE},
		func() bool { return got(a, "after") })
	if got(a, "to b") {
		t.Error("data for b reached a")
	}

	// The SDK sets a nonce of its own; the Twirp client sends ours.
	admin := srv.apiToken(t, &auth.VideoGrant{RoomAdmin: true, Room: name})
	_, err := srv.twirpClient().SendData(withBearer(t, admin), &livekit.SendDataRequest{Room: name, Data: []byte("x"), Nonce: []byte("short")})
	wantCode(t, "SendData with a bad nonce", err, twirp.InvalidArgument)
	_, err = srv.twirpClient().SendData(withBearer(t, admin), &livekit.SendDataRequest{Room: name, Data: []byte("x"), Kind: 7})
	wantCode(t, "SendData of an unknown kind", err, twirp.InvalidArgument)
	_, err = rc.SendData(apiCtx(t), &livekit.SendDataRequest{Room: "no-such-room", Data: []byte("x")})
	wantCode(t, "SendData to no room", err, twirp.NotFound)
}

func TestRoomServiceDeleteRoom(t *testing.T) {
	srv := startServer(t)
	rc := srv.roomClient()
	name := roomName(t, "room")
	ws := []*watcher{srv.watch(t, name, "a"), srv.watch(t, name, "b")}

	if _, err := rc.DeleteRoom(apiCtx(t), &livekit.DeleteRoomRequest{Room: name}); err != nil {
		t.Fatalf("DeleteRoom: %v", err)
	}
	for _, w := range ws {
		// The SDK's callback folds ROOM_DELETED into OtherReason.
		w.waitDisconnected(t, lksdk.OtherReason, livekit.DisconnectReason_ROOM_DELETED)
	}
	list, err := rc.ListRooms(apiCtx(t), &livekit.ListRoomsRequest{Names: []string{name}})
	if err != nil {
		t.Fatalf("ListRooms: %v", err)
	}
	if len(list.Rooms) != 0 {
		t.Errorf("ListRooms after DeleteRoom = %v, want none", list.Rooms)
	}
	_, err = rc.DeleteRoom(apiCtx(t), &livekit.DeleteRoomRequest{Room: name})
	wantCode(t, "DeleteRoom again", err, twirp.NotFound)
}

func TestRoomServiceUpdateRoomMetadata(t *testing.T) {
	srv := startServer(t)
	rc := srv.roomClient()
	name := roomName(t, "room")
	w := srv.watch(t, name, "a")

	room, err := rc.UpdateRoomMetadata(apiCtx(t), &livekit.UpdateRoomMetadataRequest{Room: name, Metadata: "hello"})
	if err != nil {
		t.Fatalf("UpdateRoomMetadata: %v", err)
	}
	if room.Metadata != "hello" || room.Name != name {
		t.Errorf("UpdateRoomMetadata = %v, want room %s with metadata hello", room, name)
	}
	eventually(t, "OnRoomMetadataChanged(hello)", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return slices.Contains(w.metadata, "hello")
	})
	if late := srv.join(t, name, "late"); late.room.Metadata() != "hello" {
		t.Errorf("metadata at join %q, want hello", late.room.Metadata())
	}
	_, err = rc.UpdateRoomMetadata(apiCtx(t), &livekit.UpdateRoomMetadataRequest{Room: "no-such-room", Metadata: "x"})
	wantCode(t, "UpdateRoomMetadata of no room", err, twirp.NotFound)
}

func TestRoomServiceUpdateParticipant(t *testing.T) {
	srv := startServer(t)
	rc := srv.roomClient()
	name := roomName(t, "room")
	ps := srv.joinAll(t, name, "a", "b")
	a, b := ps[0], ps[1]
	m := a.publishMedia(false, true)
	sid := m.audioPub.SID()
	b.waitFor(time.Now().Add(mediaTimeout), "a's microphone", func() bool { return b.published["a"][sid] })

	pi, err := rc.UpdateParticipant(apiCtx(t), &livekit.UpdateParticipantRequest{
		Room: name, Identity: "a", Name: "Alice", Metadata: "meta", Attributes: map[string]string{"k": "v"},
	})
	if err != nil {
		t.Fatalf("UpdateParticipant: %v", err)
	}
	if pi.Name != "Alice" || pi.Metadata != "meta" || pi.Attributes["k"] != "v" {
		t.Errorf("UpdateParticipant = %v, want name, metadata and attributes set", pi)
	}
	eventually(t, "b to see a's new metadata", func() bool {
		rp := b.room.GetParticipantByIdentity("a")
		return rp != nil && rp.Metadata() == "meta" && rp.Name() == "Alice" && rp.Attributes()["k"] == "v"
	})
	eventually(t, "a to see its own new metadata", func() bool { return a.room.LocalParticipant.Metadata() == "meta" })

	// Taking away can_publish unpublishes a's track, for everyone.
	pi, err = rc.UpdateParticipant(apiCtx(t), &livekit.UpdateParticipantRequest{
		Room: name, Identity: "a",
		Permission: &livekit.ParticipantPermission{CanSubscribe: true, CanPublishData: true},
	})
	if err != nil {
		t.Fatalf("UpdateParticipant(permission): %v", err)
	}
	if pi.Permission.GetCanPublish() || !pi.Permission.GetCanSubscribe() {
		t.Errorf("permission after update %v, want can_subscribe only", pi.Permission)
	}
	eventually(t, "a's track to be unpublished", func() bool {
		rp := b.room.GetParticipantByIdentity("a")
		return rp != nil && len(rp.TrackPublications()) == 0
	})
	eventually(t, "a's SDK to unpublish the track", func() bool { return len(a.room.LocalParticipant.TrackPublications()) == 0 })
	eventually(t, "a to see its permission", func() bool {
		p := a.room.LocalParticipant.Permissions()
		return p != nil && !p.CanPublish
	})

	_, err = rc.UpdateParticipant(apiCtx(t), &livekit.UpdateParticipantRequest{Room: name, Identity: "nobody", Metadata: "x"})
	wantCode(t, "UpdateParticipant(nobody)", err, twirp.NotFound)
}

func TestRoomServiceGrants(t *testing.T) {
	srv := startServer(t)
	roomA, roomB := roomName(t, "a"), roomName(t, "b")
	srv.join(t, roomA, "victim")
	tc := srv.twirpClient()
	remove := &livekit.RoomParticipantIdentity{Room: roomA, Identity: "victim"}

	for _, c := range []struct {
		what, token string
	}{
		{"no token", ""},
		{"a participant token", srv.token(t, roomA, "victim")},
		{"roomAdmin for another room", srv.apiToken(t, &auth.VideoGrant{RoomAdmin: true, Room: roomB})},
		{"roomAdmin without a room", srv.apiToken(t, &auth.VideoGrant{RoomAdmin: true})},
		{"roomCreate and roomList", srv.apiToken(t, &auth.VideoGrant{RoomCreate: true, RoomList: true, Room: roomA})},
		{"a token signed with another secret", func() string {
			tok, err := auth.NewAccessToken(srv.key, "another-secret-that-is-32-characters-long").
				SetVideoGrant(&auth.VideoGrant{RoomAdmin: true, Room: roomA}).SetValidFor(time.Minute).ToJWT()
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}()},
	} {
		_, err := tc.RemoveParticipant(withBearer(t, c.token), remove)
		wantCode(t, "RemoveParticipant with "+c.what, err, twirp.Unauthenticated)
	}

	admin := srv.apiToken(t, &auth.VideoGrant{RoomAdmin: true, Room: roomA})
	_, err := tc.CreateRoom(withBearer(t, admin), &livekit.CreateRoomRequest{Name: roomA})
	wantCode(t, "CreateRoom without roomCreate", err, twirp.Unauthenticated)
	_, err = tc.DeleteRoom(withBearer(t, admin), &livekit.DeleteRoomRequest{Room: roomA})
	wantCode(t, "DeleteRoom without roomCreate", err, twirp.Unauthenticated)
	_, err = tc.ListRooms(withBearer(t, admin), &livekit.ListRoomsRequest{})
	wantCode(t, "ListRooms without roomList", err, twirp.Unauthenticated)
	_, err = tc.PerformRpc(withBearer(t, admin), &livekit.PerformRpcRequest{Room: roomA, DestinationIdentity: "victim"})
	wantCode(t, "PerformRpc", err, twirp.Unimplemented)

	if _, err := tc.RemoveParticipant(withBearer(t, admin), remove); err != nil {
		t.Fatalf("RemoveParticipant with roomAdmin for the room: %v", err)
	}
	_, err = tc.GetParticipant(withBearer(t, admin), remove)
	wantCode(t, "GetParticipant after removal", err, twirp.NotFound)
}

// TestRoomServiceWire checks what non-Go clients see: JSON bodies, Twirp's
// error JSON with the HTTP status of its code, and CORS.
func TestRoomServiceWire(t *testing.T) {
	srv := startServer(t)
	name := roomName(t, "room")
	url := srv.httpURL() + livekit.RoomServicePathPrefix + "GetParticipant"
	post := func(auth string) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"room":"`+name+`","identity":"nobody"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", "https://example.org")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("POST: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), resp.Header
	}

	status, body, hdr := post("Bearer " + srv.apiToken(t, &auth.VideoGrant{RoomAdmin: true, Room: name}))
	if status != http.StatusNotFound || !strings.Contains(body, `"code":"not_found"`) {
		t.Errorf("GetParticipant(nobody) = %d %s, want 404 with code not_found", status, body)
	}
	if hdr.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("no CORS header on a RoomService answer: %v", hdr)
	}
	status, body, _ = post("Basic Zm9vOmJhcg==")
	if status != http.StatusUnauthorized || !strings.Contains(body, `"code":"unauthenticated"`) {
		t.Errorf("GetParticipant with Basic auth = %d %s, want 401 unauthenticated", status, body)
	}
	status, body, _ = post("Bearer not-a-jwt")
	if status != http.StatusUnauthorized || !strings.Contains(body, `"code":"unauthenticated"`) {
		t.Errorf("GetParticipant with a bad token = %d %s, want 401 unauthenticated", status, body)
	}

	// A protobuf body too large is refused before it is read whole.
	b, err := proto.Marshal(&livekit.SendDataRequest{Room: name, Data: make([]byte, 5<<20)})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, srv.httpURL()+livekit.RoomServicePathPrefix+"SendData", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/protobuf")
	req.Header.Set("Authorization", "Bearer "+srv.apiToken(t, &auth.VideoGrant{RoomAdmin: true, Room: name}))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		// The server may close the connection before the client has
		// written the whole body: refused all the same.
		t.Logf("oversized SendData: %v", err)
		return
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("oversized SendData: status %d, want 400", resp.StatusCode)
	}
}
