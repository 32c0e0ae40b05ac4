package authtest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/synapseadmin"
)

// requestTimeout bounds each HTTP request a helper makes; Dendrite answers
// in milliseconds on loopback.
const requestTimeout = 10 * time.Second

// User is a registered, logged-in account on a Homeserver. Its fields must
// not be changed; Client may be used for anything the helpers lack.
type User struct {
	ID     id.UserID
	Device id.DeviceID
	// Token is the access token of Device.
	Token  string
	Client *mautrix.Client
}

// Register creates the account localpart with shared-secret registration
// (POST /_synapse/admin/v1/register with its HMAC) and logs it in as
// device <LOCALPART>DEV, e.g. ALICEDEV. It fails the test if the account
// exists.
func (hs *Homeserver) Register(t testing.TB, localpart string) *User {
	t.Helper()
	ctx, cancel := hs.context(t)
	defer cancel()
	anon := hs.client(t, "", "")
	admin := synapseadmin.Client{Client: anon}
	_, err := admin.SharedSecretRegister(ctx, hs.sharedSecret, synapseadmin.ReqSharedSecretRegister{
		Username: localpart,
		Password: hs.password,
	})
	if err != nil {
		t.Fatalf("authtest: register %q: %v", localpart, err)
	}
	return hs.Login(t, localpart, id.DeviceID(strings.ToUpper(localpart)+"DEV"))
}

// Login logs the account localpart, created by Register, in again as
// device, e.g. to give a user a second device. Logging in with an
// existing device ID replaces that device's token.
func (hs *Homeserver) Login(t testing.TB, localpart string, device id.DeviceID) *User {
	t.Helper()
	ctx, cancel := hs.context(t)
	defer cancel()
	cli := hs.client(t, "", "")
	resp, err := cli.Login(ctx, &mautrix.ReqLogin{
		Type:                     mautrix.AuthTypePassword,
		Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart},
		Password:                 hs.password,
		DeviceID:                 device,
		InitialDeviceDisplayName: string(device),
		StoreCredentials:         true,
	})
	if err != nil {
		t.Fatalf("authtest: log %q in as %s: %v", localpart, device, err)
	}
	return &User{ID: resp.UserID, Device: resp.DeviceID, Token: resp.AccessToken, Client: cli}
}

// OpenID asks for an OpenID token (POST
// /_matrix/client/v3/user/{userId}/openid/request_token), the credential
// Element Call hands to the authorisation service. Dendrite v0.13.8 puts
// an absolute Unix time in seconds into ExpiresIn, not a lifetime.
func (u *User) OpenID(t testing.TB) *mautrix.RespOpenIDToken {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	resp, err := u.Client.RequestOpenIDToken(ctx)
	if err != nil {
		t.Fatalf("authtest: OpenID token for %s: %v", u.ID, err)
	}
	if resp.AccessToken == "" {
		t.Fatalf("authtest: OpenID token for %s: empty access_token in %+v", u.ID, resp)
	}
	return resp
}

// OpenIDToken returns just the access_token of a new OpenID token; see
// OpenID.
func (u *User) OpenIDToken(t testing.TB) string {
	t.Helper()
	return u.OpenID(t).AccessToken
}

// client returns a mautrix client for hs that makes no retries and logs
// nothing. userID and token may be empty.
func (hs *Homeserver) client(t testing.TB, userID id.UserID, token string) *mautrix.Client {
	t.Helper()
	cli, err := mautrix.NewClient(hs.URL, userID, token)
	if err != nil {
		t.Fatalf("authtest: %v", err)
	}
	return cli
}

// context bounds one request. It does not derive from t.Context(), which
// is cancelled before cleanups run: helpers may be called from t.Cleanup.
func (hs *Homeserver) context(t testing.TB) (context.Context, context.CancelFunc) {
	t.Helper()
	return context.WithTimeout(context.Background(), requestTimeout)
}

// httpStatus returns the HTTP status of a mautrix error, or 0.
func httpStatus(err error) int {
	var httpErr mautrix.HTTPError
	if errors.As(err, &httpErr) && httpErr.Response != nil {
		return httpErr.Response.StatusCode
	}
	return 0
}
