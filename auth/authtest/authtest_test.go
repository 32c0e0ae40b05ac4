package authtest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestHomeserver runs the harness against a real Dendrite: users, a call
// room, OpenID verification through the federation userinfo endpoint, and
// call.member state, including a spoofed key.
func TestHomeserver(t *testing.T) {
	start := time.Now()
	hs := Start(t, Options{LiveKitServiceURL: "http://127.0.0.1:9/sfu"})
	t.Logf("Dendrite pid %d at %s (%s) answered in %v", hs.PID, hs.URL, hs.ServerName, time.Since(start))

	alice := hs.Register(t, "alice")
	bob := hs.Register(t, "bob")
	carol := hs.Register(t, "carol")
	if want := id.NewUserID("alice", hs.ServerName); alice.ID != want || alice.Device != "ALICEDEV" {
		t.Fatalf("alice is %s device %s, want %s device ALICEDEV", alice.ID, alice.Device, want)
	}
	room := hs.CreateRoom(t, alice, bob, carol)
	hs.Join(t, bob, room)
	hs.Join(t, carol, room)

	t.Run("PowerLevels", func(t *testing.T) {
		var pl event.PowerLevelsEventContent
		ctx, cancel := hs.context(t)
		defer cancel()
		if err := bob.Client.StateEvent(ctx, room, event.StatePowerLevels, "", &pl); err != nil {
			t.Fatal(err)
		}
		if got := pl.Events[CallMemberType]; got != 0 {
			t.Errorf("%s needs %d, want 0", CallMemberType, got)
		}
		if got := pl.Events["m.room.power_levels"]; got != 100 {
			t.Errorf("m.room.power_levels needs %d, want 100", got)
		}
		if pl.UsersDefault != 0 || pl.StateDefault() != 50 || pl.Kick() != 50 || pl.GetUserLevel(alice.ID) != 100 {
			t.Errorf("users_default %d state_default %d kick %d alice %d, want 0 50 50 100",
				pl.UsersDefault, pl.StateDefault(), pl.Kick(), pl.GetUserLevel(alice.ID))
		}
	})

	t.Run("OpenID", func(t *testing.T) {
		tok := alice.OpenID(t)
		if tok.MatrixServerName != hs.ServerName || tok.TokenType != "Bearer" {
			t.Errorf("token %+v, want server %s, type Bearer", tok, hs.ServerName)
		}
		code, body := userinfo(t, hs, tok.AccessToken)
		if code != http.StatusOK || body["sub"] != string(alice.ID) {
			t.Errorf("userinfo: %d %v, want 200 sub %s", code, body, alice.ID)
		}
		if code, body := userinfo(t, hs, "not-a-token"); code != http.StatusUnauthorized {
			t.Errorf("userinfo with a bad token: %d %v, want 401", code, body)
		}
		if bob.OpenIDToken(t) == tok.AccessToken {
			t.Error("bob got alice's OpenID token")
		}
	})

	t.Run("CallMember", func(t *testing.T) {
		key := CallMemberKey(bob)
		if want := "_" + string(bob.ID) + "_BOBDEV_m.call"; key != want {
			t.Errorf("key %q, want %q", key, want)
		}
		if got := hs.CallMemberState(t, carol, room, key); got != nil {
			t.Errorf("before joining the call: %v, want nil", got)
		}
		if ev := hs.SendCallMember(t, bob, room); ev == "" {
			t.Error("no event ID")
		}
		got := hs.CallMemberState(t, carol, room, key)
		want := roundTrip(t, hs.CallMemberContent(bob, room))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("read back %v, want %v", got, want)
		}
		foci := got["foci_preferred"].([]any)[0].(map[string]any)
		if foci["livekit_service_url"] != "http://127.0.0.1:9/sfu" || foci["livekit_alias"] != string(room) {
			t.Errorf("foci_preferred[0] = %v", foci)
		}
		hs.EmptyCallMember(t, bob, room)
		if got := hs.CallMemberState(t, carol, room, key); got == nil || len(got) != 0 {
			t.Errorf("after hang-up: %v, want {}", got)
		}

		// Helpers work in cleanups too, e.g. to hang up.
		hs.SendCallMember(t, carol, room)
		t.Cleanup(func() {
			hs.EmptyCallMember(t, carol, room)
			if got := hs.CallMemberState(t, alice, room, CallMemberKey(carol)); len(got) != 0 {
				t.Errorf("carol after hang-up in a cleanup: %v, want {}", got)
			}
		})
	})

	t.Run("SpoofedKey", func(t *testing.T) {
		// bob writes alice's key; Dendrite accepts it, so readers must take
		// the user from the sender.
		key := CallMemberKey(alice)
		hs.SendCallMemberWithKey(t, bob, room, key, hs.CallMemberContent(bob, room))
		ctx, cancel := hs.context(t)
		defer cancel()
		ev, err := carol.Client.FullStateEvent(ctx, room, callMemberType(), key)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Sender != bob.ID {
			t.Errorf("sender of %q is %s, want %s", key, ev.Sender, bob.ID)
		}
	})

	t.Run("Membership", func(t *testing.T) {
		hs.SetPowerLevel(t, alice, room, bob, 50)
		hs.Kick(t, bob, room, carol)
		hs.Invite(t, alice, room, carol)
		hs.Join(t, carol, room)
		hs.Ban(t, bob, room, carol)
		hs.Leave(t, bob, room)
		ctx, cancel := hs.context(t)
		defer cancel()
		members, err := alice.Client.JoinedMembers(ctx, room)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := members.Joined[alice.ID]; !ok || len(members.Joined) != 1 {
			t.Errorf("joined members %v, want only alice", members.Joined)
		}
		var carolState event.MemberEventContent
		if err := alice.Client.StateEvent(ctx, room, event.StateMember, string(carol.ID), &carolState); err != nil {
			t.Fatal(err)
		}
		if carolState.Membership != event.MembershipBan {
			t.Errorf("carol's membership %s, want ban", carolState.Membership)
		}
	})

	t.Run("SecondDevice", func(t *testing.T) {
		phone := hs.Login(t, "alice", "ALICEPHONE")
		if phone.ID != alice.ID || phone.Device != "ALICEPHONE" || phone.Token == alice.Token {
			t.Errorf("second device %+v", phone)
		}
	})
}

// TestAppService checks that Dendrite pushes a call.member event to an
// application service whose namespace covers the sender.
func TestAppService(t *testing.T) {
	type txn struct {
		path, auth string
		events     []map[string]any
	}
	var mu sync.Mutex // guards txns
	var txns []txn
	got := make(chan struct{}, 1)
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var tx struct {
			Events []map[string]any `json:"events"`
		}
		_ = json.Unmarshal(body, &tx) // other requests (e.g. pings) have no events
		mu.Lock()
		txns = append(txns, txn{r.Method + " " + r.URL.Path, r.Header.Get("Authorization"), tx.Events})
		mu.Unlock()
		select {
		case got <- struct{}{}:
		default:
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}") // always 200, or Dendrite backs off
	}))
	t.Cleanup(as.Close)

	hs := Start(t, Options{AppService: &AppService{URL: as.URL}})
	if hs.AppService == nil || hs.AppService.HSToken == "" || hs.AppService.ASToken == "" {
		t.Fatalf("AppService not filled in: %+v", hs.AppService)
	}
	reg, err := os.ReadFile(hs.RegistrationPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(reg), hs.AppService.HSToken) {
		t.Errorf("registration lacks the hs_token:\n%s", reg)
	}

	alice := hs.Register(t, "alice")
	room := hs.CreateRoom(t, alice)
	evID := hs.SendCallMember(t, alice, room)

	deadline := time.After(10 * time.Second)
	for {
		mu.Lock()
		for _, tx := range txns {
			for _, ev := range tx.events {
				if ev["event_id"] != string(evID) {
					continue
				}
				if !strings.HasPrefix(tx.path, "PUT /_matrix/app/v1/transactions/") {
					t.Errorf("pushed with %s", tx.path)
				}
				if tx.auth != "Bearer "+hs.AppService.HSToken {
					t.Errorf("Authorization %q, want the hs_token", tx.auth)
				}
				if ev["type"] != CallMemberType || ev["state_key"] != CallMemberKey(alice) || ev["sender"] != string(alice.ID) {
					t.Errorf("pushed event %v", ev)
				}
				mu.Unlock()
				return
			}
		}
		mu.Unlock()
		select {
		case <-got:
		case <-deadline:
			t.Fatalf("no transaction with %s within 10 s", evID)
		}
	}
}

// userinfo calls the federation OpenID userinfo endpoint, as the
// authorisation service does.
func userinfo(t *testing.T, hs *Homeserver, token string) (int, map[string]any) {
	t.Helper()
	client := &http.Client{Timeout: requestTimeout}
	resp, err := client.Get(hs.URL + "/_matrix/federation/v1/openid/userinfo?access_token=" + url.QueryEscape(token))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// roundTrip returns v as it reads back from JSON.
func roundTrip(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
