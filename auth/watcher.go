package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Errors of the watcher's sources. They never reach a client.
var (
	// errNotJoined: a local user asked about a room the homeserver says
	// they are not in.
	errNotJoined = errors.New("auth: user is not in the room")
	// errCannotWrite: the source cannot write another user's state (bot
	// mode, or a remote user).
	errCannotWrite = errors.New("auth: cannot write that user's call membership")
)

// requestTimeout bounds each homeserver request the watcher makes outside
// the long-poll /sync.
const requestTimeout = 10 * time.Second

// source is where a roomWatcher's knowledge of rooms comes from: the bot's
// /sync or the application service's transactions.
type source interface {
	// run follows the homeserver until ctx ends.
	run(ctx context.Context) error
	// load makes room's whole state known, if possible, because user asked
	// about it. It returns errUnseen when the source cannot see the room
	// and errNotJoined when user is a local user the homeserver says is
	// not in it.
	load(ctx context.Context, room id.RoomID, user id.UserID) error
	// endCall writes {} to the call.member state key of user in room, as
	// user: the hang-up a client that dropped did not send.
	endCall(ctx context.Context, room id.RoomID, user id.UserID, key string) error
	// local reports whether user is on the watcher's homeserver.
	local(user id.UserID) bool
	// memberNow reads user's m.room.member in room from the homeserver.
	memberNow(ctx context.Context, room id.RoomID, user id.UserID) (event.Membership, error)
	// clientFor returns a client that acts for the local user where the
	// source can (application service masquerading), else one without
	// credentials.
	clientFor(user id.UserID) *mautrix.Client
}

// roomWatcher is the watcher of both modes: it keeps the model of the rooms
// its source follows, answers RoomView from it and tells the enforcer what
// changed. It is the Service's watcher and view.
type roomWatcher struct {
	log  *slog.Logger
	src  source
	enf  *enforcer
	cmds *linkCommands // nil without Config.Links

	mu      sync.Mutex // guards rooms and rechecks
	rooms   map[id.RoomID]*roomState
	recheck map[memberKey]time.Time // last homeserver check of a "not joined" answer
}

// newWatcher builds the bot or application-service watcher the
// configuration selects, or nil for neither. In application service mode it
// mounts the transaction endpoints on s.mux.
func newWatcher(s *Service) (watcher, error) {
	cfg := s.cfg
	if cfg.AccessToken == "" && cfg.AppserviceRegistration == "" {
		return nil, nil
	}
	if cfg.AccessToken != "" && cfg.AppserviceRegistration != "" {
		return nil, errors.New("auth: configure either a bot access token or an appservice registration, not both")
	}
	if cfg.HomeserverURL == "" {
		return nil, errors.New("auth: homeserver_url is required with a bot or an appservice")
	}
	if _, err := mautrix.ParseAndNormalizeBaseURL(cfg.HomeserverURL); err != nil {
		return nil, fmt.Errorf("auth: homeserver_url: %w", err)
	}
	w := &roomWatcher{
		log:   s.log.With("component", "watcher"),
		rooms: map[id.RoomID]*roomState{},
	}
	if cfg.AccessToken != "" {
		b, err := newBot(w, cfg)
		if err != nil {
			return nil, err
		}
		w.src = b
	} else {
		as, err := newAppservice(w, cfg)
		if err != nil {
			return nil, err
		}
		as.mount(s.mux)
		w.src = as
	}
	w.enf = newEnforcer(s, w)
	w.cmds = newLinkCommands(w, cfg)
	return w, nil
}

// Run follows the rooms and enforces memberships until ctx ends; it waits
// for everything it started before returning.
func (w *roomWatcher) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { w.enf.run(ctx) })
	waitCmds := w.cmds.start(ctx)
	err := w.src.run(ctx)
	cancel()
	wg.Wait()
	waitCmds()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// enforcerOf returns the enforcer of s, nil without a watcher.
func (s *Service) enforcerOf() *enforcer {
	if w, ok := s.watcher.(*roomWatcher); ok {
		return w.enf
	}
	return nil
}

// Membership implements RoomView.
func (w *roomWatcher) Membership(ctx context.Context, room id.RoomID, user id.UserID) (event.Membership, error) {
	if err := w.ensure(ctx, room, user); err != nil {
		if errors.Is(err, errNotJoined) {
			return "", nil
		}
		return "", err
	}
	w.mu.Lock()
	r := w.rooms[room]
	if r == nil || !r.complete || r.stale {
		w.mu.Unlock()
		return "", errUnseen
	}
	m := r.membership(user)
	recheck := m != event.MembershipJoin && w.mayRecheckLocked(room, user)
	w.mu.Unlock()
	if recheck {
		// The user may have joined a moment ago and the event not have
		// reached the watcher yet; a client that asks for a token right
		// after joining must not be refused for it.
		if now, err := w.src.memberNow(ctx, room, user); err == nil && now == event.MembershipJoin {
			return now, nil
		}
	}
	return m, nil
}

// memberKey names a user in a room.
type memberKey struct {
	room id.RoomID
	user id.UserID
}

// recheckEvery bounds how often a "not joined" answer is confirmed with the
// homeserver for one user and room, so refused requests cannot make Stoa
// hammer it.
const recheckEvery = 5 * time.Second

func (w *roomWatcher) mayRecheckLocked(room id.RoomID, user id.UserID) bool {
	now := time.Now()
	k := memberKey{room, user}
	if last, ok := w.recheck[k]; ok && now.Sub(last) < recheckEvery {
		return false
	}
	if len(w.recheck) >= 4096 {
		clear(w.recheck)
	}
	if w.recheck == nil {
		w.recheck = map[memberKey]time.Time{}
	}
	w.recheck[k] = now
	return true
}

// memberOf reads user's membership through cli; a missing event is "".
func memberOf(ctx context.Context, cli *mautrix.Client, room id.RoomID, user id.UserID) (event.Membership, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var content event.MemberEventContent
	if err := cli.StateEvent(ctx, room, event.StateMember, string(user), &content); err != nil {
		if httpStatus(err) == http.StatusNotFound {
			return "", nil
		}
		return "", err
	}
	return content.Membership, nil
}

// PowerLevels implements RoomView.
func (w *roomWatcher) PowerLevels(ctx context.Context, room id.RoomID, user id.UserID) (level, kick int, err error) {
	if err := w.ensure(ctx, room, user); err != nil {
		if errors.Is(err, errNotJoined) {
			err = errUnseen
		}
		return 0, 0, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.rooms[room]
	if r == nil || !r.complete || r.stale {
		return 0, 0, errUnseen
	}
	level, kick = r.powerLevels(user)
	return level, kick, nil
}

// ensure makes room's whole state known, asking the source if needed.
func (w *roomWatcher) ensure(ctx context.Context, room id.RoomID, user id.UserID) error {
	w.mu.Lock()
	r := w.rooms[room]
	done := r != nil && r.complete && !r.stale
	w.mu.Unlock()
	if done {
		return nil
	}
	return w.src.load(ctx, room, user)
}

// feed applies events of room as the homeserver delivered them, in order.
// With follow unset, events of a room the model does not hold are dropped
// (application service mode keeps only rooms someone asked about); with it
// set the room is created, and its events ordered by time as well as by
// delivery (bot mode follows every room it is in, through Dendrite's /sync,
// which re-sends old events). It tells the enforcer when something changed.
func (w *roomWatcher) feed(room id.RoomID, evts []*event.Event, follow bool) {
	if len(evts) == 0 {
		return
	}
	now := time.Now()
	w.mu.Lock()
	r := w.rooms[room]
	if r == nil && follow {
		r = newRoomState()
		r.tsOrder = true
		w.rooms[room] = r
	}
	changed := false
	if r != nil {
		for _, evt := range evts {
			if evt != nil && r.apply(evt, now) {
				changed = true
			}
		}
	}
	w.mu.Unlock()
	if changed {
		w.enf.roomChanged(room)
	}
}

// beginLoad makes sure the model holds room, so that live events are kept
// while its state is fetched, and returns the gen to pass to endLoad.
func (w *roomWatcher) beginLoad(room id.RoomID) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.rooms[room]
	if r == nil {
		r = newRoomState()
		w.rooms[room] = r
	}
	return r.gen
}

// endLoad applies a fetched state snapshot (or, with evts nil, gives up on
// a room that is still incomplete) and tells the enforcer.
func (w *roomWatcher) endLoad(room id.RoomID, since uint64, evts []*event.Event) {
	w.mu.Lock()
	r := w.rooms[room]
	switch {
	case r == nil:
	case evts == nil:
		if !r.complete {
			delete(w.rooms, room)
		}
		r = nil
	default:
		r.applySnapshot(evts, since, time.Now())
	}
	w.mu.Unlock()
	if r != nil {
		w.enf.roomChanged(room)
	}
}

// setComplete marks room's state as wholly known (the bot's sync of a
// joined room).
func (w *roomWatcher) setComplete(room id.RoomID) {
	w.mu.Lock()
	r := w.rooms[room]
	if r == nil {
		r = newRoomState()
		w.rooms[room] = r
	}
	was := r.complete
	r.complete = true
	w.mu.Unlock()
	if !was {
		w.enf.roomChanged(room)
	}
}

// forget drops room (the bot left it).
func (w *roomWatcher) forget(room id.RoomID) {
	w.mu.Lock()
	delete(w.rooms, room)
	w.mu.Unlock()
	w.enf.roomChanged(room)
}

// dropIfUnwatched marks room stale once none of its joined members is
// local: the homeserver then stops pushing its events. Questions load it
// afresh; the enforcer still acts on what it knows (the last local member
// leaving, for one).
func (w *roomWatcher) dropIfUnwatched(room id.RoomID, local func(id.UserID) bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.rooms[room]
	if r == nil || !r.complete || r.stale {
		return
	}
	for _, u := range r.joined() {
		if local(u) {
			return
		}
	}
	r.stale = true
	w.log.Debug("no local member left; room state may go stale", "room", room)
}

// seen reports whether the model holds room's whole state.
func (w *roomWatcher) seen(room id.RoomID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.rooms[room]
	return r != nil && r.complete && !r.stale
}

// verdict is the enforcer's question to the model about one participant.
type verdict struct {
	// known is unset when the model does not hold the room: nothing can be
	// enforced.
	known bool
	// leftRoom is the reason if the user is no longer joined.
	leftRoom string
	call     callState
}

// judge looks up t's user and device in the model at now.
func (w *roomWatcher) judge(t Ticket, now time.Time) verdict {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.rooms[t.Room]
	if r == nil || !r.complete {
		return verdict{}
	}
	v := verdict{known: true, call: r.call(t.User, t.Device, t.SlotID, now)}
	switch r.membership(t.User) {
	case event.MembershipJoin:
	case event.MembershipBan:
		v.leftRoom = "banned"
	case event.MembershipLeave:
		v.leftRoom = "left the room"
	default:
		v.leftRoom = "not in the room"
	}
	return v
}

// sendDelayedLeave asks user's homeserver to send the delayed leave event
// delayID now (MSC4140, MATRIXRTC.md §1.2 and §3.10): first the path form,
// then the older body form. "Not found" means it was sent or cancelled
// already, which counts as success. Only a local user's homeserver is
// known.
func (w *roomWatcher) sendDelayedLeave(ctx context.Context, user id.UserID, delayID string) error {
	if !w.src.local(user) {
		return errCannotWrite
	}
	cli := w.src.clientFor(user)
	base := []any{"unstable", "org.matrix.msc4140", "delayed_events", delayID}
	_, err := cli.MakeRequest(ctx, http.MethodPost, cli.BuildClientURL(append(base, "send")...), struct{}{}, nil)
	if isUnrecognized(err) {
		_, err = cli.MakeRequest(ctx, http.MethodPost, cli.BuildClientURL(base...), map[string]string{"action": "send"}, nil)
	}
	if errors.Is(err, mautrix.MNotFound) {
		return nil
	}
	return err
}

// isUnrecognized reports whether err says the homeserver does not know the
// endpoint (M_UNRECOGNIZED, or a 404/405 without a Matrix error).
func isUnrecognized(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, mautrix.MUnrecognized) {
		return true
	}
	var he mautrix.HTTPError
	if errors.As(err, &he) && he.RespError == nil && he.Response != nil {
		return he.Response.StatusCode == http.StatusNotFound || he.Response.StatusCode == http.StatusMethodNotAllowed
	}
	return false
}

// httpStatus returns the HTTP status of a mautrix error, or 0.
func httpStatus(err error) int {
	var he mautrix.HTTPError
	if errors.As(err, &he) && he.Response != nil {
		return he.Response.StatusCode
	}
	return 0
}

// backoff returns the wait after the n-th consecutive failure (n ≥ 1):
// 1 s doubling to at most 30 s.
func backoff(n int) time.Duration {
	d := time.Second
	for i := 1; i < n && d < 30*time.Second; i++ {
		d *= 2
	}
	return min(d, 30*time.Second)
}

// sleep waits d or until ctx ends; it reports whether the wait was full.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
