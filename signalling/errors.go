package signalling

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/twitchtv/twirp"
)

// httpError is an error answered before a WebSocket upgrade, or by the
// validate endpoints, as a plain-text HTTP response. Status and Msg follow
// LiveKit (PROTOCOL.md §1.5) because the clients branch on both: JS treats
// 401/403 as NotAllowed, and a 404 is a hard error only when Msg contains
// "requested room does not exist".
type httpError struct {
	Status int    // HTTP status code
	Msg    string // response body, shown to the client; never put a token in it
}

func (e *httpError) Error() string { return e.Msg }

// unauthorized returns a 401 httpError with msg as its body.
func unauthorized(msg string) *httpError {
	return &httpError{Status: http.StatusUnauthorized, Msg: msg}
}

// badRequest returns a 400 httpError with msg as its body.
func badRequest(msg string) *httpError { return &httpError{Status: http.StatusBadRequest, Msg: msg} }

// Join errors with LiveKit's exact status and text (PROTOCOL.md §1.5;
// livekit pkg/service/auth.go, errors.go, rtcservice.go). Callers return them
// as they are; compare with errors.Is.
var (
	errMissingBearer    = unauthorized("invalid authorization header. Must start with Bearer ")
	errInvalidToken     = unauthorized("invalid authorization token")
	errInvalidAPIKey    = unauthorized("invalid API key")
	errPermissionDenied = unauthorized("permissions denied") // token lacks roomJoin
	// errNoPermission is LiveKit's other 401 text: no token, no video grant,
	// or metadata/attributes supplied without canUpdateOwnMetadata.
	errNoPermission       = unauthorized("no permissions to access the room")
	errIdentityEmpty      = badRequest("identity cannot be empty")
	errNoRoomName         = badRequest("no room name")
	errJoinRequestMissing = badRequest("join_request is required")
	errJoinRequestLarge   = badRequest("join request too large")
	errMetadataLarge      = badRequest("metadata size exceeds limits")
	errAttributesLarge    = badRequest("attribute size exceeds limits")
	errBadAttributes      = badRequest("cannot decode attributes")

	// errRoomNotFound is for the room lookup after parseJoin: the JS SDK
	// recognises the text and gives up instead of falling back to /rtc.
	errRoomNotFound = &httpError{Status: http.StatusNotFound, Msg: "requested room does not exist"}
	// errNodeFull is for a server over its participant or room limits.
	errNodeFull = &httpError{Status: http.StatusServiceUnavailable, Msg: "node has exceeded its configured limit"}
	// errRoomFull refuses a join to a room at its max_participants, with
	// LiveKit's text (pkg/rtc/errors.go ErrMaxParticipantsExceeded).
	errRoomFull = &httpError{Status: http.StatusServiceUnavailable, Msg: "room has exceeded its max participants"}
)

// errTooLarge matches every limitError with errors.Is.
var errTooLarge = errors.New("signalling: field too large")

// limitError reports a protobuf field, in a SignalRequest or a JoinRequest,
// that is longer or has more entries than validateSignalRequest allows.
type limitError struct {
	Field string // path from the message root, e.g. "offer.sdp" or "subscription.track_sids"
	Size  int    // bytes of a string or bytes field, or entries of a list or map
	Limit int
	Count bool // Size counts entries, not bytes
}

func (e *limitError) Error() string {
	unit := "bytes"
	if e.Count {
		unit = "entries"
	}
	return fmt.Sprintf("field %s has %d %s, limit %d", e.Field, e.Size, unit, e.Limit)
}

// Is makes errors.Is(err, errTooLarge) true for every limitError.
func (e *limitError) Is(target error) bool { return target == errTooLarge }

var (
	// errServerClosed is returned by Server methods called after Close.
	errServerClosed = errors.New("signalling: server closed")
	// errDataTooLarge is a server-sent data packet over maxDataPacket.
	errDataTooLarge = errors.New("signalling: data packet too large")
)

// RoomService errors (PROTOCOL.md §6.1), with LiveKit's codes and texts
// (pkg/service/auth.go, pkg/service/errors.go). LiveKit answers every
// missing or wrong grant with unauthenticated, not permission_denied, and
// clients only look at the code; so does Stoa.
var (
	errAPIPermission          = twirp.NewError(twirp.Unauthenticated, "permissions denied")
	errAPIRoomNotFound        = twirp.NotFoundError("requested room does not exist")
	errAPIParticipantNotFound = twirp.NotFoundError("participant does not exist")
	errAPITrackNotFound       = twirp.NotFoundError("track is not found")
	errAPIRemoteUnmute        = twirp.NewError(twirp.FailedPrecondition, "remote unmute not enabled")
	errAPIUnimplemented       = twirp.NewError(twirp.Unimplemented, "not implemented")
	errAPIUnavailable         = twirp.NewError(twirp.Unavailable, "server is shutting down")
	// errAPIInternal replaces every error that is not a twirp.Error, so
	// that nothing internal reaches the caller.
	errAPIInternal = twirp.InternalError("internal error")
)
