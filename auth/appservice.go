package auth

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

const (
	// maxTransactionSize bounds a transaction body. A homeserver joining a
	// room over federation pushes its whole state in one (MATRIXRTC.md §7).
	maxTransactionSize = 32 << 20
	// maxLoadCandidates bounds the local users tried, one after the other,
	// to read a room's state.
	maxLoadCandidates = 4
)

// registration is what Stoa needs of an application service registration
// (https://spec.matrix.org/v1.16/application-service-api/#registration).
// mautrix's appservice.Registration has the same YAML keys, but its package
// pulls in a websocket library the module does not otherwise need.
type registration struct {
	ID              string `yaml:"id"`
	URL             string `yaml:"url"`
	ASToken         string `yaml:"as_token"`
	HSToken         string `yaml:"hs_token"`
	SenderLocalpart string `yaml:"sender_localpart"`
}

func loadRegistration(path string) (*registration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: appservice registration: %w", err)
	}
	var reg registration
	if err := yaml.Unmarshal(b, &reg); err != nil {
		return nil, fmt.Errorf("auth: appservice registration %s: %w", path, err)
	}
	if reg.ASToken == "" || reg.HSToken == "" {
		return nil, fmt.Errorf("auth: appservice registration %s: as_token and hs_token are required", path)
	}
	return &reg, nil
}

// appService follows rooms as an application service: the homeserver
// pushes every event of rooms with a local member in the (non-exclusive)
// user namespace, and the service reads and writes state by masquerading as
// local users (MATRIXRTC.md §7). Only rooms someone asked about are kept in
// the model.
type appService struct {
	w      *roomWatcher
	log    *slog.Logger
	reg    *registration
	hsURL  string
	server atomic.Pointer[string] // the homeserver's server name, once known
	hc     *http.Client

	mu sync.Mutex // guards locals
	// locals remembers local users seen joined to rooms, per room: whom to
	// masquerade as to read a room a remote user asks about.
	locals map[id.RoomID]map[id.UserID]struct{}
}

func newAppservice(w *roomWatcher, cfg Config) (*appService, error) {
	reg, err := loadRegistration(cfg.AppserviceRegistration)
	if err != nil {
		return nil, err
	}
	a := &appService{
		w:      w,
		log:    w.log.With("mode", "appservice", "appservice", reg.ID),
		reg:    reg,
		hsURL:  cfg.HomeserverURL,
		hc:     &http.Client{Timeout: requestTimeout},
		locals: map[id.RoomID]map[id.UserID]struct{}{},
	}
	if cfg.ServerName != "" {
		name := cfg.ServerName
		a.server.Store(&name)
	}
	return a, nil
}

// mount registers the homeserver-facing endpoints on mux: transactions
// (current and legacy paths), user and room queries, and ping.
func (a *appService) mount(mux *http.ServeMux) {
	mux.HandleFunc("PUT /_matrix/app/v1/transactions/{txnId}", a.putTransaction)
	mux.HandleFunc("PUT /transactions/{txnId}", a.putTransaction)
	mux.HandleFunc("GET /_matrix/app/v1/users/{userId}", a.query)
	mux.HandleFunc("GET /_matrix/app/v1/rooms/{alias}", a.query)
	mux.HandleFunc("POST /_matrix/app/v1/ping", a.ping)
}

// authorized checks the homeserver's token: Authorization: Bearer, or the
// legacy access_token query parameter. On failure it has answered.
func (a *appService) authorized(w http.ResponseWriter, r *http.Request) bool {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		token = r.URL.Query().Get("access_token")
	}
	if token == "" {
		writeMatrixError(w, http.StatusUnauthorized, "M_MISSING_TOKEN", "Missing access token")
		return false
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(a.reg.HSToken)) != 1 {
		writeMatrixError(w, http.StatusForbidden, "M_FORBIDDEN", "Invalid access token")
		return false
	}
	return true
}

// putTransaction receives pushed events. Every authorised request with a
// JSON body is answered 200 {}: homeservers back off for up to a minute on
// anything else (TESTENV.md), and a retried transaction may repeat events,
// which the model drops by event ID.
func (a *appService) putTransaction(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(w, r) {
		return
	}
	var txn struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxTransactionSize)).Decode(&txn); err != nil {
		a.log.Warn("unreadable transaction", "txn", r.PathValue("txnId"), "err", err)
		writeMatrixError(w, http.StatusBadRequest, "M_NOT_JSON", "Unreadable transaction")
		return
	}
	bad := 0
	var room id.RoomID
	var rooms []id.RoomID
	var batch []*event.Event
	for _, raw := range txn.Events {
		evt := &event.Event{}
		if err := json.Unmarshal(raw, evt); err != nil || evt.RoomID == "" {
			bad++
			continue
		}
		a.noteLocal(evt)
		if evt.RoomID != room {
			rooms = append(rooms, evt.RoomID)
		}
		if evt.RoomID != room && len(batch) > 0 {
			a.w.feed(room, batch, false)
			a.w.cmds.handle(room, batch)
			batch = nil
		}
		room = evt.RoomID
		batch = append(batch, evt)
	}
	a.w.feed(room, batch, false)
	a.w.cmds.handle(room, batch)
	for _, r := range rooms {
		a.w.dropIfUnwatched(r, a.local)
	}
	if bad > 0 {
		a.log.Warn("skipped unreadable events in transaction", "txn", r.PathValue("txnId"), "count", bad)
	}
	a.log.Debug("transaction", "txn", r.PathValue("txnId"), "events", len(txn.Events))
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte("{}"))
}

// query answers the homeserver's user and room alias queries: Stoa creates
// neither.
func (a *appService) query(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(w, r) {
		return
	}
	writeMatrixError(w, http.StatusNotFound, "M_NOT_FOUND", "Not provided by this application service")
}

// ping answers the homeserver's connectivity check.
func (a *appService) ping(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(w, r) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte("{}"))
}

// writeMatrixError answers {"errcode","error"} with status.
func writeMatrixError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"errcode": code, "error": msg})
}

// noteLocal keeps locals up to date from a pushed event.
func (a *appService) noteLocal(evt *event.Event) {
	var user id.UserID
	joined := true
	if evt.Type.Type == event.StateMember.Type && evt.StateKey != nil {
		user = id.UserID(*evt.StateKey)
		var c struct {
			Membership event.Membership `json:"membership"`
		}
		_ = json.Unmarshal(evt.Content.VeryRaw, &c)
		joined = c.Membership == event.MembershipJoin
	} else {
		user = evt.Sender
	}
	if user == "" || !a.local(user) {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	set := a.locals[evt.RoomID]
	if joined {
		if set == nil {
			set = map[id.UserID]struct{}{}
			a.locals[evt.RoomID] = set
		}
		set[user] = struct{}{}
	} else if set != nil {
		delete(set, user)
		if len(set) == 0 {
			delete(a.locals, evt.RoomID)
		}
	}
}

// run implements source. Transactions arrive through the HTTP handler; run
// only learns the server name if the configuration did not give it.
func (a *appService) run(ctx context.Context) error {
	for failures := 1; a.server.Load() == nil; failures++ {
		cli := a.clientFor("")
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		resp, err := cli.Whoami(rctx)
		cancel()
		if err == nil {
			name := resp.UserID.Homeserver()
			a.server.Store(&name)
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		wait := backoff(failures)
		a.log.Warn("whoami failed", "err", err, "retry_in", wait)
		if !sleep(ctx, wait) {
			return nil
		}
	}
	a.log.Info("application service receiving transactions", "server", *a.server.Load())
	<-ctx.Done()
	return nil
}

// local implements source.
func (a *appService) local(user id.UserID) bool {
	s := a.server.Load()
	return s != nil && user.Homeserver() == *s
}

// clientFor implements source: a client that masquerades as user (or acts
// as the application service's own user if user is "").
func (a *appService) clientFor(user id.UserID) *mautrix.Client {
	cli, _ := mautrix.NewClient(a.hsURL, user, a.reg.ASToken)
	cli.Client = a.hc
	cli.SetAppServiceUserID = user != ""
	return cli
}

// load implements source: it reads the room's whole state as user, if
// local, or else as local users seen joined to it.
func (a *appService) load(ctx context.Context, room id.RoomID, user id.UserID) error {
	var candidates []id.UserID
	if a.local(user) {
		candidates = append(candidates, user)
	}
	a.mu.Lock()
	for u := range a.locals[room] {
		if u != user && len(candidates) < maxLoadCandidates {
			candidates = append(candidates, u)
		}
	}
	a.mu.Unlock()
	if len(candidates) == 0 {
		return errUnseen
	}
	since := a.w.beginLoad(room)
	requesterOut := false
	for _, u := range candidates {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		evts, err := a.clientFor(u).StateAsArray(rctx, room)
		cancel()
		if err == nil {
			a.w.endLoad(room, since, evts)
			a.log.Debug("loaded room state", "room", room, "as", u, "events", len(evts))
			return nil
		}
		// 403: not joined (or not registered); 401: not ours to act for.
		if s := httpStatus(err); s == http.StatusForbidden || s == http.StatusUnauthorized {
			if u == user {
				requesterOut = true
			}
			a.forgetLocal(room, u)
			continue
		}
		a.w.endLoad(room, since, nil)
		return fmt.Errorf("auth: reading state of %s as %s: %w", room, u, err)
	}
	a.w.endLoad(room, since, nil)
	if requesterOut {
		return errNotJoined
	}
	return errUnseen
}

// memberNow implements source, reading as user if local, else as a local
// member of the room.
func (a *appService) memberNow(ctx context.Context, room id.RoomID, user id.UserID) (event.Membership, error) {
	as := user
	if !a.local(user) {
		as = ""
		a.mu.Lock()
		for u := range a.locals[room] {
			as = u
			break
		}
		a.mu.Unlock()
		if as == "" {
			return "", errUnseen
		}
	}
	return memberOf(ctx, a.clientFor(as), room, user)
}

func (a *appService) forgetLocal(room id.RoomID, user id.UserID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.locals[room], user)
}

// endCall implements source: it writes {} to user's membership key as user
// (delegated leave for homeservers without MSC4140, MATRIXRTC.md §7).
func (a *appService) endCall(ctx context.Context, room id.RoomID, user id.UserID, key string) error {
	if !a.local(user) || key == "" {
		return errCannotWrite
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	_, err := a.clientFor(user).SendStateEvent(ctx, room,
		event.Type{Type: typeCallMember, Class: event.StateEventType}, key, struct{}{})
	if err != nil {
		return fmt.Errorf("auth: emptying %s's call membership in %s: %w", user, room, err)
	}
	return nil
}

// notice implements replier: the application service's own user posts an
// m.notice in room, joining it first if it is not in it (which works for
// public rooms and rooms it was invited to).
func (a *appService) notice(ctx context.Context, room id.RoomID, body string) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	cli := a.clientFor("")
	content := &event.MessageEventContent{MsgType: event.MsgNotice, Body: body}
	_, err := cli.SendMessageEvent(ctx, room, event.EventMessage, content)
	if errors.Is(err, mautrix.MForbidden) {
		if _, jerr := cli.JoinRoomByID(ctx, room); jerr != nil {
			return fmt.Errorf("%w (and cannot join: %w)", err, jerr)
		}
		_, err = cli.SendMessageEvent(ctx, room, event.EventMessage, content)
	}
	return err
}

// isSelf implements replier: the application service's sender_localpart.
func (a *appService) isSelf(user id.UserID) bool {
	return a.reg.SenderLocalpart != "" && a.local(user) && user.Localpart() == a.reg.SenderLocalpart
}
