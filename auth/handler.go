package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

const (
	// maxBodySize caps a token request; real ones are under 1 KiB.
	maxBodySize = 64 << 10
	// maxDelayTimeout caps a recorded delay_timeout. Homeservers cap
	// MSC4140 delays too (Synapse: max_event_delay_duration).
	maxDelayTimeout = 24 * time.Hour
	// maxRoomIDLength is the spec's limit on identifiers.
	maxRoomIDLength = 255
)

// CORS headers of lk-jwt-service's POST endpoints (MATRIXRTC.md §3.1).
// Element Call calls remote members' services from its own origin, so any
// origin is allowed.
const (
	corsAllowMethods = "POST"
	corsAllowHeaders = "Accept, Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token"
)

// routes mounts the HTTP endpoints: lk-jwt-service's API (MATRIXRTC.md
// §3.1) and RTC transport discovery (discovery.go).
//
//	POST /sfu/get                 legacy token request (OPTIONS: CORS preflight)
//	POST /get_token               MSC4195 token request (OPTIONS: CORS preflight)
//	POST /delegate_delayed_leave  404: delegation is not implemented
//	GET|HEAD /healthz             200
func (s *Service) routes() {
	h := &tokenHandler{svc: s, openid: newOpenIDVerifier(s.cfg.OpenIDBaseURLs, nil)}
	s.mux.HandleFunc("/sfu/get", postEndpoint(h.sfuGet))
	s.mux.HandleFunc("/get_token", postEndpoint(h.getToken))
	s.mux.HandleFunc("/delegate_delayed_leave", delegateDelayedLeave)
	s.mux.HandleFunc("/healthz", healthz)
	s.discoveryRoutes()
}

// tokenHandler serves the token endpoints. Safe for concurrent use.
type tokenHandler struct {
	svc    *Service
	openid *openIDVerifier
}

// tokenRequest is the body of both token endpoints, decoded leniently:
// unknown fields are ignored (lk-jwt-service rejects them, which broke
// Element X: MATRIXRTC.md §3.1). delay_cs_api_url is ignored, as
// lk-jwt-service does since #188.
type tokenRequest struct {
	// /sfu/get (legacy).
	Room     string `json:"room"`
	DeviceID string `json:"device_id"`

	// /get_token (MSC4195).
	RoomID string `json:"room_id"`
	SlotID string `json:"slot_id"`
	Member struct {
		ID              string `json:"id"`
		ClaimedUserID   string `json:"claimed_user_id"`
		ClaimedDeviceID string `json:"claimed_device_id"`
	} `json:"member"`

	// Both. token_type and expires_in are not checked, as by
	// lk-jwt-service (Dendrite's expires_in is a Unix time anyway).
	OpenIDToken struct {
		AccessToken      string `json:"access_token"`
		MatrixServerName string `json:"matrix_server_name"`
	} `json:"openid_token"`
	DelayID      string  `json:"delay_id"`
	DelayTimeout float64 `json:"delay_timeout"` // milliseconds
}

// tokenClaim is a validated token request.
type tokenClaim struct {
	endpoint     string
	room         id.RoomID
	slot         string
	server       string    // matrix_server_name
	token        string    // the OpenID access token: never log it
	claimedUser  id.UserID // "" on /sfu/get, which has no claim
	device       id.DeviceID
	memberID     string // "" on /sfu/get: legacy identity
	delayID      string
	delayTimeout time.Duration
}

// tokenResponse is the answer to a token request.
type tokenResponse struct {
	URL string `json:"url"`
	JWT string `json:"jwt"`
}

// sfuGet serves POST /sfu/get. Like lk-jwt-service v0.5.0 it also takes a
// /get_token body (one with room_id and no room).
func (h *tokenHandler) sfuGet(w http.ResponseWriter, r *http.Request) {
	var req tokenRequest
	if err := decodeBody(w, r, &req); err != nil {
		h.answer(w, r, "/sfu/get", tokenResponse{}, err)
		return
	}
	var c tokenClaim
	var err error
	if req.Room == "" && req.RoomID != "" {
		c, err = getTokenClaim(&req)
	} else {
		c, err = legacyClaim(&req)
	}
	c.endpoint = "/sfu/get"
	if err != nil {
		h.answer(w, r, c.endpoint, tokenResponse{}, err)
		return
	}
	resp, err := h.issue(r.Context(), c)
	h.answer(w, r, c.endpoint, resp, err)
}

// getToken serves POST /get_token.
func (h *tokenHandler) getToken(w http.ResponseWriter, r *http.Request) {
	var req tokenRequest
	if err := decodeBody(w, r, &req); err != nil {
		h.answer(w, r, "/get_token", tokenResponse{}, err)
		return
	}
	c, err := getTokenClaim(&req)
	c.endpoint = "/get_token"
	if err != nil {
		h.answer(w, r, c.endpoint, tokenResponse{}, err)
		return
	}
	resp, err := h.issue(r.Context(), c)
	h.answer(w, r, c.endpoint, resp, err)
}

// answer writes resp, or err with a log line at a level that fits it.
func (h *tokenHandler) answer(w http.ResponseWriter, r *http.Request, endpoint string, resp tokenResponse, err error) {
	if err == nil {
		writeJSON(w, http.StatusOK, resp)
		return
	}
	level := slog.LevelInfo
	var re mautrix.RespError
	switch {
	case !errors.As(err, &re) || re.StatusCode >= 500:
		level = slog.LevelError
	case re.StatusCode == http.StatusBadRequest || re.StatusCode == http.StatusRequestEntityTooLarge:
		level = slog.LevelDebug
	}
	h.svc.log.Log(r.Context(), level, "token refused", "endpoint", endpoint, "remote", r.RemoteAddr, "err", err)
	writeError(w, err)
}

// decodeBody decodes r's JSON body into v, reading at most maxBodySize.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodySize)).Decode(v)
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &tooLarge):
		return fmt.Errorf("%w: %w", errTooLarge, err)
	default:
		return fmt.Errorf("%w: %w", errNotJSON, err)
	}
}

// getTokenClaim validates a /get_token body in lk-jwt-service's order
// (MATRIXRTC.md §3.2), then the room ID.
func getTokenClaim(req *tokenRequest) (tokenClaim, error) {
	m := &req.Member
	switch {
	case req.RoomID == "" || req.SlotID == "":
		return tokenClaim{}, badJSON(msgMissingRoomSlot)
	case m.ID == "" || m.ClaimedUserID == "" || m.ClaimedDeviceID == "":
		return tokenClaim{}, badJSON(msgMissingMember)
	}
	c, err := commonClaim(req, req.RoomID)
	if err != nil {
		return tokenClaim{}, err
	}
	c.slot = req.SlotID
	c.claimedUser = id.UserID(m.ClaimedUserID)
	c.device = id.DeviceID(m.ClaimedDeviceID)
	c.memberID = m.ID
	return c, nil
}

// legacyClaim validates a /sfu/get body in lk-jwt-service's order
// (MATRIXRTC.md §3.3), then the room and device IDs. device_id may be
// empty; it must be printable ASCII, as it goes into the token as is.
func legacyClaim(req *tokenRequest) (tokenClaim, error) {
	if req.Room == "" {
		return tokenClaim{}, badJSON(msgLegacyMissingRoom)
	}
	c, err := commonClaim(req, req.Room)
	if err != nil {
		return tokenClaim{}, err
	}
	if !printableASCII(req.DeviceID) {
		return tokenClaim{}, badJSON("Invalid device_id")
	}
	c.slot = roomSlot
	c.device = id.DeviceID(req.DeviceID)
	return c, nil
}

// commonClaim validates the OpenID token and delay fields, then room.
func commonClaim(req *tokenRequest, room string) (tokenClaim, error) {
	tok := &req.OpenIDToken
	if tok.AccessToken == "" || tok.MatrixServerName == "" {
		if req.Room != "" {
			return tokenClaim{}, badJSON(msgLegacyMissingOIDC)
		}
		return tokenClaim{}, badJSON(msgMissingOpenID)
	}
	hasID, hasTimeout := req.DelayID != "", req.DelayTimeout > 0
	if hasID != hasTimeout {
		return tokenClaim{}, badJSON(msgMissingDelay)
	}
	if len(room) > maxRoomIDLength || len(room) < 2 || room[0] != '!' || !printableASCII(room) {
		return tokenClaim{}, badJSON("Invalid room ID")
	}
	c := tokenClaim{
		room:    id.RoomID(room),
		server:  tok.MatrixServerName,
		token:   tok.AccessToken,
		delayID: req.DelayID,
	}
	if hasTimeout {
		c.delayTimeout = maxDelayTimeout
		if ms := req.DelayTimeout; ms < float64(maxDelayTimeout/time.Millisecond) {
			c.delayTimeout = time.Duration(ms * float64(time.Millisecond))
		}
	}
	return c, nil
}

// issue verifies c's OpenID token, decides, mints a token and records its
// ticket.
func (h *tokenHandler) issue(ctx context.Context, c tokenClaim) (tokenResponse, error) {
	s := h.svc
	user, err := h.openid.verify(ctx, c.server, c.token)
	if err != nil {
		return tokenResponse{}, err
	}
	if c.claimedUser != "" && c.claimedUser != user {
		return tokenResponse{}, fmt.Errorf("%w: claimed_user_id %s, token of %s", errUnauthorized, c.claimedUser, user)
	}
	identity := legacyIdentity(user, c.device)
	if c.memberID != "" {
		identity = memberIdentity(user, c.device, c.memberID)
	}
	alias := roomAlias(c.room, c.slot)
	log := s.log.With("endpoint", c.endpoint, "user", user, "device", c.device,
		"room", c.room, "alias", alias, "identity", identity)

	d, err := s.authorise(ctx, log, c.room, user, c.server, alias)
	if err != nil {
		return tokenResponse{}, fmt.Errorf("%w: user %s, room %s", err, user, c.room)
	}
	jwt, err := mintToken(s.cfg.APIKey, s.cfg.APISecret, s.cfg.TokenTTL, grant{Identity: identity, Alias: alias, Admin: d.admin})
	if err != nil {
		return tokenResponse{}, fmt.Errorf("%w: %w", errInternal, err)
	}
	if !atobSafe(jwt) {
		log.Warn("token payload is not plain base64: Element Call cannot read it")
	}
	if d.create {
		if err := s.sfu.CreateRoom(alias); err != nil {
			return tokenResponse{}, fmt.Errorf("%w: %s: %w", errCreateRoom, alias, err)
		}
	}
	s.tickets.add(Ticket{
		Alias:        alias,
		Identity:     identity,
		Room:         c.room,
		SlotID:       c.slot,
		User:         user,
		Device:       c.device,
		MemberID:     c.memberID,
		DelayID:      c.delayID,
		DelayTimeout: c.delayTimeout,
	}, 2*s.cfg.TokenTTL, s.connected)

	log.Info("token issued", "why", d.why, "admin", d.admin, "delayed_leave", c.delayID != "")
	return tokenResponse{URL: s.cfg.PublicURL, JWT: jwt}, nil
}

// decision is what authorise allows.
type decision struct {
	create bool   // open the SFU room before answering
	admin  bool   // grant roomAdmin
	why    string // for the log
}

// authorise decides whether user, of server, may join the call of room,
// whose SFU room is alias. A user joined to the room may, and opens the
// SFU room; rooms Stoa does not see follow Config.UnseenRooms. Refusals
// are M_FORBIDDEN errors. log carries the request's attributes.
func (s *Service) authorise(ctx context.Context, log *slog.Logger, room id.RoomID, user id.UserID, server, alias string) (decision, error) {
	if s.view == nil {
		return s.authoriseUnseen(server, alias)
	}
	m, err := s.view.Membership(ctx, room, user)
	switch {
	case errors.Is(err, errUnseen):
		return s.authoriseUnseen(server, alias)
	case err != nil:
		return decision{}, fmt.Errorf("%w: %w", errRoomState, err)
	case m != event.MembershipJoin:
		return decision{}, fmt.Errorf("%w (membership %q)", errNotInRoom, m)
	}
	d := decision{create: true, why: "joined"}
	level, kick, err := s.view.PowerLevels(ctx, room, user)
	if err != nil {
		// The user may join; only the admin grant is in doubt.
		log.Warn("no power levels: not granting room admin", "err", err)
		return d, nil
	}
	admin := kick
	if s.cfg.AdminPowerLevel != nil {
		admin = *s.cfg.AdminPowerLevel
	}
	d.admin = level >= admin
	return d, nil
}

// authoriseUnseen applies Config.UnseenRooms to a room Stoa does not see.
// UnseenLKJWT is lk-jwt-service's policy (MATRIXRTC.md §3.9), except that
// a restricted user gets no token for a call that has not started, rather
// than one the SFU would refuse.
func (s *Service) authoriseUnseen(server, alias string) (decision, error) {
	switch {
	case s.cfg.UnseenRooms != UnseenLKJWT:
		return decision{}, errUnseenRoom
	case s.fullAccess(server):
		return decision{create: true, why: "unseen room, full-access homeserver"}, nil
	case s.sfu.RoomExists(alias):
		return decision{why: "unseen room, call in progress"}, nil
	default:
		return decision{}, errNotStarted
	}
}

// fullAccess reports whether users of server may open SFU rooms under the
// UnseenLKJWT policy: server is listed exactly, or "*" is.
func (s *Service) fullAccess(server string) bool {
	return slices.Contains(s.cfg.FullAccessHomeservers, "*") ||
		slices.Contains(s.cfg.FullAccessHomeservers, server)
}

// postEndpoint serves a POST endpoint as lk-jwt-service does: its CORS and
// JSON headers on every answer, 200 to OPTIONS (the CORS preflight), and
// 405 with no body to methods other than POST.
func postEndpoint(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		setCORS(w.Header())
		switch r.Method {
		case http.MethodPost:
			next(w, r)
		case http.MethodOptions:
			w.WriteHeader(http.StatusOK)
		default:
			w.Header().Set("Allow", "POST, OPTIONS")
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	}
}

// setCORS sets lk-jwt-service's CORS and JSON headers.
func setCORS(hdr http.Header) {
	hdr.Set("Access-Control-Allow-Origin", "*")
	hdr.Set("Access-Control-Allow-Methods", corsAllowMethods)
	hdr.Set("Access-Control-Allow-Headers", corsAllowHeaders)
	hdr.Set("Content-Type", "application/json")
}

// delegateDelayedLeave answers 404 M_UNRECOGNIZED to everything but the
// CORS preflight: Element Call probes the endpoint with a POST and takes
// any other status to mean that delegation is supported (MATRIXRTC.md §9).
// The CORS headers let the browser show it the 404.
func delegateDelayedLeave(w http.ResponseWriter, r *http.Request) {
	setCORS(w.Header())
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusOK)
		return
	}
	writeError(w, errNoDelegation)
}

// healthz answers 200 with no body to GET and HEAD, 405 to the rest.
func healthz(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Allow", "GET, HEAD")
	w.WriteHeader(http.StatusMethodNotAllowed)
}

// connected reports whether identity is in the SFU room alias.
func (s *Service) connected(alias, identity string) bool {
	return slices.Contains(s.sfu.Participants(alias), identity)
}
