package auth

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"
)

const (
	// defaultLeaveGrace is how long after a participant left the SFU room
	// its still-present call membership is left alone: a client that
	// resumes or reconnects with the same identity comes back within it
	// (livekit-client's reconnect policy retries within seconds), and one
	// that hangs up empties the membership itself (MATRIXRTC.md §9).
	defaultLeaveGrace = 8 * time.Second
	// idleWait is the enforcer's wait when nothing is scheduled.
	idleWait = time.Hour
)

// Removal reasons, given to the SFU (and logged).
const (
	reasonNoCall    = "no call membership"
	reasonCallEnded = "call membership ended"
)

// ParticipantJoined is called by the SFU when a participant joined room. It
// does not block. A participant whose token Stoa issued is watched from now
// on: it must show a call membership within Config.MembershipGrace and keep
// its room membership.
func (s *Service) ParticipantJoined(room, identity string) {
	if e := s.enforcerOf(); e != nil {
		e.joined(room, identity)
	}
}

// ParticipantLeft is called by the SFU when a participant left room. It does
// not block. If the participant's call membership outlives it (the client
// dropped without hanging up), Stoa ends it after a short grace.
func (s *Service) ParticipantLeft(room, identity string) {
	if e := s.enforcerOf(); e != nil {
		e.left(room, identity)
	}
}

// participantKey names an SFU participant.
type participantKey struct{ alias, identity string }

// session is a connected participant whose token Stoa issued.
type session struct {
	ticket Ticket
	joined time.Time
	// inactiveSince is when the model last started to show no call
	// membership for the participant (its join, at first); zero while it
	// shows one. The grace runs from it.
	inactiveSince time.Time
	// deadline is when to look again even if the room does not change
	// (end of grace, expiry of the membership); zero for never.
	deadline time.Time
}

// departure is a participant that left, whose membership is checked when
// due.
type departure struct {
	ticket Ticket
	due    time.Time
}

// enforcer removes SFU participants whose room or call membership ended,
// and ends call memberships whose participant dropped. One goroutine, run,
// makes every decision; the SFU and the watcher only mark work and wake it.
type enforcer struct {
	sfu        SFU
	tickets    *tickets
	w          *roomWatcher
	log        *slog.Logger
	grace      time.Duration // Config.MembershipGrace
	leaveGrace time.Duration

	wake chan struct{} // size 1: "look again", coalesced

	mu       sync.Mutex // guards the following
	sessions map[participantKey]*session
	departed map[participantKey]departure
	dirty    map[id.RoomID]struct{} // rooms whose model changed
}

func newEnforcer(s *Service, w *roomWatcher) *enforcer {
	return &enforcer{
		sfu:        s.sfu,
		tickets:    &s.tickets,
		w:          w,
		log:        s.log.With("component", "enforcer"),
		grace:      s.cfg.MembershipGrace,
		leaveGrace: defaultLeaveGrace,
		wake:       make(chan struct{}, 1),
		sessions:   map[participantKey]*session{},
		departed:   map[participantKey]departure{},
		dirty:      map[id.RoomID]struct{}{},
	}
}

func (e *enforcer) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *enforcer) joined(alias, identity string) {
	t, ok := e.tickets.get(alias, identity)
	if !ok {
		// A token Stoa did not issue (stoa token, another service).
		e.log.Debug("participant without ticket; not watched", "room", alias, "identity", identity)
		return
	}
	now := time.Now()
	k := participantKey{alias, identity}
	e.mu.Lock()
	e.sessions[k] = &session{ticket: t, joined: now, inactiveSince: now, deadline: now}
	delete(e.departed, k)
	e.mu.Unlock()
	e.poke()
}

func (e *enforcer) left(alias, identity string) {
	k := participantKey{alias, identity}
	// The latest ticket: Element Call asks for a second token once it has
	// scheduled its delayed leave, and that one carries the delay ID.
	latest, ok := e.tickets.get(alias, identity)
	e.mu.Lock()
	s := e.sessions[k]
	delete(e.sessions, k)
	if s != nil {
		t := s.ticket
		if ok && latest.Room == t.Room && latest.User == t.User && latest.Device == t.Device {
			t = latest
		}
		e.departed[k] = departure{ticket: t, due: time.Now().Add(e.leaveGrace)}
	}
	e.mu.Unlock()
	if s != nil {
		e.poke()
	}
}

// roomChanged tells the enforcer that the model of room changed.
func (e *enforcer) roomChanged(room id.RoomID) {
	e.mu.Lock()
	watched := false
	for _, s := range e.sessions {
		if s.ticket.Room == room {
			watched = true
			break
		}
	}
	if watched {
		e.dirty[room] = struct{}{}
	}
	e.mu.Unlock()
	if watched {
		e.poke()
	}
}

// run makes the enforcer's decisions until ctx ends, then waits for the
// clean-ups it started.
func (e *enforcer) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(idleWait)
	defer timer.Stop()
	for {
		next := e.step(ctx, &wg)
		wait := idleWait
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		case <-timer.C:
		}
	}
}

// check is one session to look at in a step.
type check struct {
	key participantKey
	s   *session
	was session // s as it was when collected
}

// step acts on what is due and returns when to step again (zero: only when
// woken).
func (e *enforcer) step(ctx context.Context, wg *sync.WaitGroup) time.Time {
	now := time.Now()
	var checks []check
	var leaves []departure
	e.mu.Lock()
	for k, s := range e.sessions {
		_, dirty := e.dirty[s.ticket.Room]
		if dirty || !s.deadline.IsZero() && !now.Before(s.deadline) {
			checks = append(checks, check{key: k, s: s, was: *s})
		}
	}
	clear(e.dirty)
	for k, d := range e.departed {
		if !now.Before(d.due) {
			leaves = append(leaves, d)
			delete(e.departed, k)
		}
	}
	e.mu.Unlock()

	for _, c := range checks {
		next, reason := e.judge(c.was, now)
		e.mu.Lock()
		current := e.sessions[c.key] == c.s
		if current {
			if reason != "" {
				delete(e.sessions, c.key)
			} else {
				*c.s = next
			}
		}
		e.mu.Unlock()
		if current && reason != "" {
			e.remove(c.was.ticket, reason, now)
		}
	}
	for _, d := range leaves {
		wg.Go(func() { e.cleanUp(ctx, d) })
	}

	var next time.Time
	e.mu.Lock()
	defer e.mu.Unlock()
	earliest := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, s := range e.sessions {
		earliest(s.deadline)
	}
	for _, d := range e.departed {
		earliest(d.due)
	}
	if len(e.dirty) > 0 {
		next = now
	}
	return next
}

// judge decides about one session at now: the session's next state, or a
// reason to remove it.
func (e *enforcer) judge(s session, now time.Time) (session, string) {
	v := e.w.judge(s.ticket, now)
	s.deadline = time.Time{}
	switch {
	case !v.known:
		// The room is not (or no longer) visible: nothing to go by. It is
		// looked at again when it becomes visible.
		return s, ""
	case v.leftRoom != "":
		return s, v.leftRoom
	case v.call.active:
		s.inactiveSince = time.Time{}
		// Look again when it expires, unless renewed before.
		s.deadline = v.call.expires.Add(time.Millisecond)
		return s, ""
	case !v.call.ended.IsZero() && !v.call.ended.Before(s.joined):
		// Hung up (or expired) while connected.
		return s, reasonCallEnded
	}
	if s.inactiveSince.IsZero() {
		// Gone, but not by its owner's hand (someone overwrote it): the
		// owner's client usually restores it, so it gets the grace.
		s.inactiveSince = now
	}
	end := s.inactiveSince.Add(e.grace)
	if !now.Before(end) {
		return s, reasonNoCall
	}
	s.deadline = end
	return s, ""
}

func (e *enforcer) remove(t Ticket, reason string, now time.Time) {
	log := e.log.With("room", t.Alias, "identity", t.Identity, "matrix_room", t.Room, "user", t.User, "device", t.Device)
	if err := e.sfu.RemoveParticipant(t.Alias, t.Identity, reason); err != nil {
		log.Warn("cannot remove participant", "reason", reason, "err", err)
		return
	}
	log.Info("removed participant", "reason", reason, "decided_in", time.Since(now))
}

// cleanUp ends the call membership of a participant that left without
// hanging up, unless it came back or another connection of the same device
// is still there.
func (e *enforcer) cleanUp(ctx context.Context, d departure) {
	t := d.ticket
	log := e.log.With("room", t.Alias, "identity", t.Identity, "matrix_room", t.Room, "user", t.User, "device", t.Device)
	if slices.Contains(e.sfu.Participants(t.Alias), t.Identity) {
		return // reconnected
	}
	e.mu.Lock()
	for _, s := range e.sessions {
		if s.ticket.Room == t.Room && s.ticket.User == t.User && s.ticket.Device == t.Device {
			e.mu.Unlock()
			return // the device is still in the call through another identity
		}
	}
	e.mu.Unlock()
	v := e.w.judge(t, time.Now())
	if !v.known || v.leftRoom != "" || !v.call.active {
		return
	}
	if t.DelayID != "" {
		err := e.w.sendDelayedLeave(ctx, t.User, t.DelayID)
		if err == nil {
			log.Info("sent the delayed leave of a dropped participant")
			return
		}
		if ctx.Err() != nil {
			return
		}
		log.Info("cannot send the delayed leave of a dropped participant", "err", err)
	}
	err := e.w.src.endCall(ctx, t.Room, t.User, v.call.key)
	switch {
	case err == nil:
		log.Info("ended the call membership of a dropped participant", "key", v.call.key)
	case errors.Is(err, errCannotWrite):
		log.Info("participant dropped without hanging up; its call membership stays until it expires",
			"expires", v.call.expires)
	case ctx.Err() == nil:
		log.Warn("cannot end the call membership of a dropped participant", "err", err)
	}
}
