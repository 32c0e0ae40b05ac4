package auth

import (
	"encoding/json"
	"errors"
	"net/http"

	"maunium.net/go/mautrix"
)

// Matrix-facing errors of the token endpoints, with lk-jwt-service's codes,
// statuses and texts (MATRIXRTC.md §3.5). They are mautrix.RespError values:
// errors.Is matches them by errcode (M_UNKNOWN by errcode and text), and
// errors.As recovers the value to write. Wrap one with %w to add detail for
// the log; only its errcode and text reach the client.
var (
	// errNotJSON: the body is not JSON of the expected shape.
	errNotJSON = mautrix.MNotJSON.WithMessage("Error reading request")
	// errTooLarge: the body is over maxBodySize.
	errTooLarge = mautrix.MTooLarge.WithMessage("Request body too large")
	// errUnauthorized: the OpenID token could not be verified, or names
	// someone other than the claimed user. Not predefined by mautrix.
	errUnauthorized = mautrix.RespError{
		ErrCode:    "M_UNAUTHORIZED",
		Err:        "The request could not be authorised.",
		StatusCode: http.StatusUnauthorized,
	}
	// errNotInRoom: the user is not joined to the room.
	errNotInRoom = mautrix.MForbidden.WithMessage("You are not joined to this room")
	// errUnseenRoom: Stoa does not follow the room, and the UnseenDeny
	// policy applies.
	errUnseenRoom = mautrix.MForbidden.WithMessage("Stoa cannot see this room: " +
		"invite its bot account to the room, or check its application service registration")
	// errNotStarted: under the UnseenLKJWT policy, a user of a restricted
	// homeserver asked for a call that has not started.
	errNotStarted = mautrix.MForbidden.WithMessage("Only users of full-access homeservers can start a call in this room")
	// errNoDelegation answers /delegate_delayed_leave.
	errNoDelegation = mautrix.MUnrecognized.WithMessage("Delegation of delayed leave events is not supported")
	// errInternal: minting failed.
	errInternal = mautrix.MUnknown.WithMessage("Internal Server Error")
	// errCreateRoom: the SFU refused to open the room.
	errCreateRoom = mautrix.MUnknown.WithMessage("Unable to create room on SFU")
	// errRoomState: the room view failed (not "room unseen": a real error).
	errRoomState = mautrix.MUnknown.WithMessage("Unable to check room membership")
)

// Texts of the M_BAD_JSON errors, as lk-jwt-service words them
// (requests.go, HEAD a375b130).
const (
	msgMissingRoomSlot   = "The request body is missing `room_id` or `slot_id`"
	msgMissingMember     = "The request body `member` is missing a `id`, `claimed_user_id` or `claimed_device_id`"
	msgMissingOpenID     = "The request body `openid_token` is missing a `access_token` or `matrix_server_name`"
	msgMissingDelay      = "The request body is missing `delay_id` or `delay_timeout`"
	msgLegacyMissingRoom = "Missing room parameter"
	msgLegacyMissingOIDC = "Missing OpenID token parameters"
)

// badJSON returns a 400 M_BAD_JSON error with msg.
func badJSON(msg string) error { return mautrix.MBadJSON.WithMessage(msg) }

// writeError answers err as {"errcode","error"} with its status. An error
// that carries no mautrix.RespError is answered as errInternal: internal
// detail never reaches the client.
func writeError(w http.ResponseWriter, err error) {
	var re mautrix.RespError
	if !errors.As(err, &re) {
		re = errInternal
	}
	status := re.StatusCode
	if status == 0 {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, struct {
		ErrCode string `json:"errcode"`
		Err     string `json:"error"`
	}{re.ErrCode, re.Err})
}

// writeJSON answers v as JSON with status. Headers set before stay.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// An encoding error here means the client went away; nothing to do.
	_ = json.NewEncoder(w).Encode(v)
}
