package web

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/livekit/protocol/auth"
)

// LinksPath is where the links API lives on Stoa's port. Mount API at
// LinksPath and at LinksPath + "/".
const LinksPath = "/api/links"

// Limits and defaults of the links API.
const (
	// defaultLinkTTL is a link's lifetime when its creator gives none: a
	// working day's meeting, opened again the next morning.
	defaultLinkTTL = 24 * time.Hour
	// defaultMaxLinkTTL caps a link's lifetime: a year covers a recurring
	// meeting; beyond that, make a new link.
	defaultMaxLinkTTL = 366 * 24 * time.Hour
	// guestTokenTTL is the lifetime of a guest's access token. It only has
	// to last until the client connects: the SFU refreshes the tokens of
	// connected participants (signalling/token.go).
	guestTokenTTL = time.Hour
	// minGuestTokenTTL is the shortest guest token, for a link about to
	// expire, so that the client still has time to connect.
	minGuestTokenTTL = time.Minute
	// Join rate limit per link: a token bucket of defaultJoinBurst that
	// refills one join per defaultJoinInterval. A meeting's start sees a
	// burst of guests; a leaked link then mints at most one token a second.
	defaultJoinBurst    = 30
	defaultJoinInterval = time.Second
	// maxAPIBody bounds request bodies; the largest valid one is a room
	// name of 256 bytes in JSON.
	maxAPIBody = 16 << 10
	// maxGuestNameLen is the longest display name, in runes.
	maxGuestNameLen = 64
	// maxJoinBuckets bounds the rate limiter's memory: past it, full
	// buckets (links nobody joined lately) are forgotten.
	maxJoinBuckets = 1024
)

// Error codes of the links API, the "error" member of every error answer.
const (
	codeBadRequest       = "bad_request"
	codeUnauthorized     = "unauthorized"
	codeForbidden        = "forbidden"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeLinkNotFound     = "link_not_found"
	codeLinkExpired      = "link_expired"
	codeLinkRevoked      = "link_revoked"
	codeRateLimited      = "rate_limited"
	codeInternal         = "internal"
)

// APIConfig configures the links API.
type APIConfig struct {
	// Links is the store. Required.
	Links *Links
	// Keys maps API keys to secrets. Admin requests must carry an access
	// token signed with one of them; guest tokens are signed with the first
	// key in sorted order. Required; only read.
	Keys map[string]string
	// PublicURL is the WebSocket URL of this server that guests connect
	// to (wss://stoa.example.org). Links are its http(s) twin + "/j/" +
	// slug. Required.
	PublicURL string
	// MaxTTL caps a link's lifetime. Default 366 days.
	MaxTTL time.Duration
	// JoinBurst and JoinInterval rate-limit joins per link: a token bucket
	// of JoinBurst that refills one every JoinInterval. Defaults 30 and 1s.
	JoinBurst    int
	JoinInterval time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// API is the HTTP API of meeting links (issue 5). Every answer is JSON;
// errors are {"error": code, "message": text}.
//
//	POST   /api/links              admin: create a link
//	GET    /api/links[?room=R]     admin: list links
//	GET    /api/links/{slug}       public: what a link grants, or why it is refused
//	DELETE /api/links/{slug}       admin: revoke a link
//	POST   /api/links/{slug}/join  public: a guest's access token
//
// Admin requests carry "Authorization: Bearer <access token>" signed with a
// configured key, with video.roomCreate (roomList to list every room) or
// video.roomAdmin for the link's room. CORS headers come from the signalling
// server that API is mounted on. API is safe for concurrent use.
type API struct {
	links    *Links
	keys     map[string]string
	signKey  string
	wsURL    string
	pageBase string // http(s) base of links, without a trailing slash
	maxTTL   time.Duration
	log      *slog.Logger
	now      func() time.Time
	limiter  joinLimiter
	mux      *http.ServeMux
}

// NewAPI returns the links API configured by cfg.
func NewAPI(cfg APIConfig) (*API, error) {
	if cfg.Links == nil {
		return nil, errors.New("web: links API: no store")
	}
	if len(cfg.Keys) == 0 {
		return nil, errors.New("web: links API: no API key")
	}
	base, err := PageBase(cfg.PublicURL)
	if err != nil {
		return nil, fmt.Errorf("web: links API: %w", err)
	}
	a := &API{
		links:    cfg.Links,
		keys:     maps.Clone(cfg.Keys),
		signKey:  slices.Sorted(maps.Keys(cfg.Keys))[0],
		wsURL:    strings.TrimSuffix(cfg.PublicURL, "/"),
		pageBase: base,
		maxTTL:   orDefault(cfg.MaxTTL, defaultMaxLinkTTL),
		log:      cfg.Logger,
		now:      cfg.Now,
		mux:      http.NewServeMux(),
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.now == nil {
		a.now = time.Now
	}
	a.limiter = joinLimiter{
		burst:    float64(orDefault(cfg.JoinBurst, defaultJoinBurst)),
		interval: orDefault(cfg.JoinInterval, defaultJoinInterval),
		buckets:  map[string]*joinBucket{},
	}
	a.mux.HandleFunc("POST "+LinksPath, a.create)
	a.mux.HandleFunc("GET "+LinksPath, a.list)
	a.mux.HandleFunc("GET "+LinksPath+"/{slug}", a.info)
	a.mux.HandleFunc("DELETE "+LinksPath+"/{slug}", a.revoke)
	a.mux.HandleFunc("POST "+LinksPath+"/{slug}/join", a.join)
	a.mux.HandleFunc(LinksPath, a.fallback)
	a.mux.HandleFunc(LinksPath+"/", a.fallback)
	return a, nil
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// PageBase returns the http(s) URL that meeting links start with for the
// WebSocket URL publicURL: ws becomes http and wss https, and a trailing
// slash is dropped.
func PageBase(publicURL string) (string, error) {
	u, err := url.Parse(publicURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("public URL %q is not an absolute ws:// or wss:// URL", publicURL)
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	default:
		return "", fmt.Errorf("public URL %q is not an absolute ws:// or wss:// URL", publicURL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("public URL %q has a query, fragment or user", publicURL)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// LinkInfo is a link as the admin API returns it (JSON); the stoa CLI
// decodes the same type.
type LinkInfo struct {
	Slug            string    `json:"slug"`
	URL             string    `json:"url"`
	Room            string    `json:"room"`
	CreatedAt       time.Time `json:"created_at"`
	ExpiresAt       time.Time `json:"expires_at"`
	ViewOnly        bool      `json:"view_only"`
	E2EE            bool      `json:"e2ee"`
	RequireApproval bool      `json:"require_approval"`
	State           string    `json:"state"` // active, expired or revoked
}

func (a *API) linkInfo(l *Link, now time.Time) LinkInfo {
	return LinkInfo{
		Slug:            l.Slug,
		URL:             a.pageBase + "/j/" + l.Slug,
		Room:            l.Room,
		CreatedAt:       l.CreatedAt.UTC(),
		ExpiresAt:       l.ExpiresAt.UTC(),
		ViewOnly:        l.ViewOnly,
		E2EE:            l.E2EE,
		RequireApproval: l.RequireApproval,
		State:           l.State(now),
	}
}

// createRequest is the body of POST /api/links.
type createRequest struct {
	Room            string `json:"room"`
	TTL             string `json:"ttl"`         // Go duration: "24h", "90m"
	TTLSeconds      *int64 `json:"ttl_seconds"` // or seconds; not both
	ViewOnly        bool   `json:"view_only"`
	E2EE            bool   `json:"e2ee"`
	RequireApproval bool   `json:"require_approval"`
}

func (a *API) create(w http.ResponseWriter, r *http.Request) {
	claims, aerr := a.admin(r)
	if aerr != nil {
		a.writeError(w, aerr)
		return
	}
	var req createRequest
	if aerr := decodeAPIBody(r, w, &req); aerr != nil {
		a.writeError(w, aerr)
		return
	}
	if err := checkRoomName(req.Room); err != nil {
		a.writeError(w, apiBadRequest(err.Error()))
		return
	}
	v := claims.Video
	if !v.RoomCreate && !(v.RoomAdmin && v.Room == req.Room) {
		a.writeError(w, apiForbidden("creating a link needs video.roomCreate, or video.roomAdmin for room "+strconv.Quote(req.Room)))
		return
	}
	ttl, aerr := a.parseTTL(&req)
	if aerr != nil {
		a.writeError(w, aerr)
		return
	}
	if req.RequireApproval {
		a.writeError(w, apiBadRequest("require_approval (a waiting room) is not supported yet"))
		return
	}
	l, err := a.links.Create(LinkOptions{Room: req.Room, TTL: ttl, ViewOnly: req.ViewOnly, E2EE: req.E2EE})
	if err != nil {
		a.writeError(w, apiInternal(err))
		return
	}
	a.log.Info("meeting link created", "room", l.Room, "link", logSlug(l.Slug), "expires", l.ExpiresAt,
		"view_only", l.ViewOnly, "e2ee", l.E2EE, "by", claims.Identity)
	w.Header().Set("Location", LinksPath+"/"+l.Slug)
	writeAPIJSON(w, http.StatusCreated, a.linkInfo(&l, a.now()))
}

func (a *API) parseTTL(req *createRequest) (time.Duration, *apiError) {
	ttl := defaultLinkTTL
	switch {
	case req.TTL != "" && req.TTLSeconds != nil:
		return 0, apiBadRequest("give ttl or ttl_seconds, not both")
	case req.TTL != "":
		d, err := time.ParseDuration(req.TTL)
		if err != nil {
			return 0, apiBadRequest(fmt.Sprintf("ttl %q is not a duration such as 24h or 90m", req.TTL))
		}
		ttl = d
	case req.TTLSeconds != nil:
		if *req.TTLSeconds > int64(a.maxTTL/time.Second) {
			return 0, apiBadRequest(fmt.Sprintf("ttl is longer than the maximum of %v", a.maxTTL))
		}
		ttl = time.Duration(*req.TTLSeconds) * time.Second
	}
	switch {
	case ttl < time.Second:
		return 0, apiBadRequest("ttl must be at least one second")
	case ttl > a.maxTTL:
		return 0, apiBadRequest(fmt.Sprintf("ttl is longer than the maximum of %v", a.maxTTL))
	}
	return ttl, nil
}

// listResponse is the answer to GET /api/links.
type listResponse struct {
	Links []LinkInfo `json:"links"`
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	claims, aerr := a.admin(r)
	if aerr != nil {
		a.writeError(w, aerr)
		return
	}
	room := r.URL.Query().Get("room")
	v := claims.Video
	switch {
	case v.RoomList:
	case v.RoomAdmin && v.Room != "" && (room == "" || room == v.Room):
		room = v.Room
	default:
		a.writeError(w, apiForbidden("listing links needs video.roomList, or video.roomAdmin for the room given in ?room="))
		return
	}
	now := a.now()
	out := listResponse{Links: []LinkInfo{}}
	for _, l := range a.links.List(room) {
		out.Links = append(out.Links, a.linkInfo(&l, now))
	}
	writeAPIJSON(w, http.StatusOK, out)
}

// infoResponse is the answer to GET /api/links/{slug}: what the page needs
// before it asks for a name.
type infoResponse struct {
	Room            string    `json:"room"`
	ExpiresAt       time.Time `json:"expires_at"`
	ViewOnly        bool      `json:"view_only"`
	E2EE            bool      `json:"e2ee"`
	RequireApproval bool      `json:"require_approval"`
}

func (a *API) info(w http.ResponseWriter, r *http.Request) {
	l, err := a.links.Lookup(r.PathValue("slug"))
	if err != nil {
		a.writeError(w, lookupError(err))
		return
	}
	writeAPIJSON(w, http.StatusOK, infoResponse{
		Room: l.Room, ExpiresAt: l.ExpiresAt.UTC(),
		ViewOnly: l.ViewOnly, E2EE: l.E2EE, RequireApproval: l.RequireApproval,
	})
}

func (a *API) revoke(w http.ResponseWriter, r *http.Request) {
	claims, aerr := a.admin(r)
	if aerr != nil {
		a.writeError(w, aerr)
		return
	}
	slug := r.PathValue("slug")
	l, err := a.links.Lookup(slug)
	if errors.Is(err, ErrLinkNotFound) {
		a.writeError(w, lookupError(err))
		return
	}
	if v := claims.Video; !v.RoomCreate && !(v.RoomAdmin && v.Room == l.Room) {
		a.writeError(w, apiForbidden("revoking a link needs video.roomCreate, or video.roomAdmin for its room"))
		return
	}
	if _, err := a.links.Revoke(slug); err != nil {
		// The link is refused from now on; only saving it failed.
		a.writeError(w, apiInternal(err))
		return
	}
	a.log.Info("meeting link revoked", "room", l.Room, "link", logSlug(slug), "by", claims.Identity)
	w.WriteHeader(http.StatusNoContent)
}

// joinRequest is the body of POST /api/links/{slug}/join.
type joinRequest struct {
	Name string `json:"name"`
}

// joinResponse is what a guest connects with: livekit-client's
// room.connect(url, token).
type joinResponse struct {
	URL      string `json:"url"`
	Token    string `json:"token"`
	Identity string `json:"identity"`
	Name     string `json:"name"`
	Room     string `json:"room"`
	ViewOnly bool   `json:"view_only"`
	E2EE     bool   `json:"e2ee"`
}

func (a *API) join(w http.ResponseWriter, r *http.Request) {
	slug := r.PathValue("slug")
	l, err := a.links.Lookup(slug)
	if err != nil {
		a.writeError(w, lookupError(err))
		return
	}
	var req joinRequest
	if aerr := decodeAPIBody(r, w, &req); aerr != nil {
		a.writeError(w, aerr)
		return
	}
	name, aerr := guestName(req.Name)
	if aerr != nil {
		a.writeError(w, aerr)
		return
	}
	now := a.now()
	if wait, ok := a.limiter.allow(slug, now); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		a.writeError(w, &apiError{http.StatusTooManyRequests, codeRateLimited, "too many people are joining through this link; try again in a moment"})
		return
	}
	identity := guestIdentity()
	ttl := min(max(l.ExpiresAt.Sub(now), minGuestTokenTTL), guestTokenTTL)
	grant := &auth.VideoGrant{
		RoomJoin:     true,
		Room:         l.Room,
		CanPublish:   new(!l.ViewOnly),
		CanSubscribe: new(true),
		// View-only guests may still chat and raise a hand.
		CanPublishData: new(true),
		// Lets the page set the guest's own attributes (a raised hand).
		CanUpdateOwnMetadata: new(true),
	}
	tok, err := auth.NewAccessToken(a.signKey, a.keys[a.signKey]).
		SetIdentity(identity).
		SetName(name).
		SetValidFor(ttl).
		SetVideoGrant(grant).
		ToJWT()
	if err != nil {
		a.writeError(w, apiInternal(err))
		return
	}
	a.log.Debug("guest joins through a link", "room", l.Room, "link", logSlug(slug), "identity", identity)
	writeAPIJSON(w, http.StatusOK, joinResponse{
		URL: a.wsURL, Token: tok, Identity: identity, Name: name,
		Room: l.Room, ViewOnly: l.ViewOnly, E2EE: l.E2EE,
	})
}

// fallback answers paths and methods no route takes.
func (a *API) fallback(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, LinksPath+"/"), "/")
	known := r.URL.Path == LinksPath ||
		(parts[0] != "" && (len(parts) == 1 || (len(parts) == 2 && parts[1] == "join")))
	if known {
		a.writeError(w, &apiError{http.StatusMethodNotAllowed, codeMethodNotAllowed, r.Method + " is not allowed here"})
		return
	}
	a.writeError(w, &apiError{http.StatusNotFound, codeNotFound, "no such API path"})
}

// admin authenticates an admin request: it returns the verified claims,
// which have a video grant.
func (a *API) admin(r *http.Request) (*auth.ClaimGrants, *apiError) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return nil, &apiError{http.StatusUnauthorized, codeUnauthorized, "an admin access token is required: Authorization: Bearer <token>"}
	}
	v, err := auth.ParseAPIToken(strings.TrimSpace(tok))
	if err != nil {
		return nil, &apiError{http.StatusUnauthorized, codeUnauthorized, "the access token is malformed"}
	}
	secret := a.keys[v.APIKey()]
	if secret == "" {
		return nil, &apiError{http.StatusUnauthorized, codeUnauthorized, "the access token's API key is not configured on this server"}
	}
	// Verify accepts HS256 only, requires exp and honours nbf (as
	// signalling's verifyToken).
	_, claims, err := v.Verify(secret)
	if err != nil {
		return nil, &apiError{http.StatusUnauthorized, codeUnauthorized, "the access token is invalid: " + err.Error()}
	}
	if claims.Video == nil {
		return nil, apiForbidden("the access token has no video grant")
	}
	return claims, nil
}

// guestName checks and trims a guest's display name.
func guestName(s string) (string, *apiError) {
	s = strings.TrimSpace(s)
	n := utf8.RuneCountInString(s)
	switch {
	case !utf8.ValidString(s):
		return "", apiBadRequest("name is not valid UTF-8")
	case n == 0:
		return "", apiBadRequest("name is required")
	case n > maxGuestNameLen:
		return "", apiBadRequest(fmt.Sprintf("name is longer than %d characters", maxGuestNameLen))
	case strings.IndexFunc(s, isForbiddenInName) >= 0:
		return "", apiBadRequest("name holds a control character")
	}
	return s, nil
}

// isForbiddenInName reports control characters and the bidirectional
// controls that could make a name display as another (Unicode TR #9;
// CVE-2021-42574). Joiners stay: emoji sequences need them.
func isForbiddenInName(r rune) bool {
	return unicode.IsControl(r) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) ||
		r == 0x200e || r == 0x200f || r == 0x061c
}

// decodeAPIBody decodes a JSON body of at most maxAPIBody into dst, refusing
// unknown members and trailing data.
func decodeAPIBody(r *http.Request, w http.ResponseWriter, dst any) *apiError {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAPIBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		if errors.Is(err, io.EOF) {
			return apiBadRequest("the request body must be a JSON object")
		}
		return apiBadRequest("the request body is not valid: " + err.Error())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return apiBadRequest("the request body holds more than one JSON value")
	}
	return nil
}

// apiError is an error answer.
type apiError struct {
	status  int
	code    string
	message string
}

func apiBadRequest(msg string) *apiError {
	return &apiError{http.StatusBadRequest, codeBadRequest, msg}
}

func apiForbidden(msg string) *apiError {
	return &apiError{http.StatusForbidden, codeForbidden, msg}
}

// internal hides err from the client; writeError logs it.
func apiInternal(err error) *apiError {
	return &apiError{http.StatusInternalServerError, codeInternal, err.Error()}
}

func lookupError(err error) *apiError {
	switch {
	case errors.Is(err, ErrLinkRevoked):
		return &apiError{http.StatusGone, codeLinkRevoked, "this meeting link has been revoked"}
	case errors.Is(err, ErrLinkExpired):
		return &apiError{http.StatusGone, codeLinkExpired, "this meeting link has expired"}
	default:
		return &apiError{http.StatusNotFound, codeLinkNotFound, "there is no such meeting link; check that it was copied whole"}
	}
}

func (a *API) writeError(w http.ResponseWriter, e *apiError) {
	msg := e.message
	if e.status == http.StatusInternalServerError {
		a.log.Error("links API", "err", e.message)
		msg = "internal server error"
	}
	writeAPIJSON(w, e.status, struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}{e.code, msg})
}

// writeAPIJSON writes v as the whole answer. Answers hold tokens and slugs,
// so no cache may keep them.
func writeAPIJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// logSlug shortens a slug for logs: a slug is a credential, its first
// characters are enough to tell links apart.
func logSlug(slug string) string {
	if len(slug) > 8 {
		return slug[:8] + "…"
	}
	return slug
}

// guestIdentity returns a fresh participant identity for a guest: 64
// random bits make two guests of one room collide about never.
func guestIdentity() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails (crypto/rand docs)
	return "guest-" + hex.EncodeToString(b)
}

// joinLimiter is a token bucket per link. It is safe for concurrent use.
type joinLimiter struct {
	burst    float64
	interval time.Duration

	mu      sync.Mutex // guards the following fields
	buckets map[string]*joinBucket
}

type joinBucket struct {
	tokens float64
	last   time.Time
}

// allow takes a token from slug's bucket at now, or reports how long until
// one is available.
func (l *joinLimiter) allow(slug string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[slug]
	if b == nil {
		if len(l.buckets) >= maxJoinBuckets {
			l.forgetFullLocked(now)
		}
		b = &joinBucket{tokens: l.burst, last: now}
		l.buckets[slug] = b
	}
	l.refill(b, now)
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) * float64(l.interval)), false
	}
	b.tokens--
	return 0, true
}

func (l *joinLimiter) refill(b *joinBucket, now time.Time) {
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(l.burst, b.tokens+float64(el)/float64(l.interval))
		b.last = now
	}
}

// forgetFullLocked drops the buckets that have refilled: forgetting them
// changes nothing.
func (l *joinLimiter) forgetFullLocked(now time.Time) {
	for slug, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= l.burst {
			delete(l.buckets, slug)
		}
	}
}
