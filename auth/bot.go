package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

const (
	// syncTimeout is the long-poll timeout of the bot's /sync; the
	// homeserver answers as soon as something happens (TESTENV.md measured
	// ~100 ms after the event on Dendrite).
	syncTimeout = 30 * time.Second
	// syncTimelineLimit bounds the timeline of a room in one sync response;
	// older state arrives in the state section.
	syncTimelineLimit = 100
	// readyWait bounds how long a RoomView question waits for the bot's
	// first sync after start-up before answering errUnseen.
	readyWait = 5 * time.Second
)

// bot follows rooms through a bot account: it joins the rooms it is invited
// to and follows them with a filtered long-poll /sync. It can only see rooms
// it is in, and write nobody's state but its own.
type bot struct {
	w      *roomWatcher
	log    *slog.Logger
	cli    *mautrix.Client
	server string // Config.ServerName; "" means the bot's own

	ready     chan struct{} // closed when the first sync has been applied
	readyOnce sync.Once
	self      atomic.Pointer[id.UserID] // the bot's user ID, once known
}

func newBot(w *roomWatcher, cfg Config) (*bot, error) {
	cli, err := mautrix.NewClient(cfg.HomeserverURL, "", cfg.AccessToken)
	if err != nil {
		return nil, fmt.Errorf("auth: bot client: %w", err)
	}
	// The client's timeout must outlast the long poll; other requests are
	// bounded by their contexts.
	cli.Client = &http.Client{Timeout: syncTimeout + 30*time.Second}
	return &bot{
		w:      w,
		log:    w.log.With("mode", "bot"),
		cli:    cli,
		server: cfg.ServerName,
		ready:  make(chan struct{}),
	}, nil
}

// followedTypes are the types the model needs from room state.
func followedTypes() []event.Type {
	return []event.Type{
		event.StateCreate, event.StateMember, event.StatePowerLevels,
		{Type: typeCallMember, Class: event.StateEventType},
	}
}

// syncFilter asks only for what the model needs: state and timeline events
// of the followed types (plus sticky rtc.member events), nothing else.
func syncFilter() *mautrix.Filter {
	none := &mautrix.FilterPart{NotTypes: []event.Type{{Type: "*"}}}
	// m.room.message carries the "!stoa link" command (links.go).
	timeline := append(followedTypes(), event.Type{Type: typeRTCMember, Class: event.MessageEventType}, event.EventMessage)
	return &mautrix.Filter{
		EventFormat: mautrix.EventFormatClient,
		AccountData: none,
		Presence:    none,
		Room: &mautrix.RoomFilter{
			AccountData: none,
			Ephemeral:   none,
			State:       &mautrix.FilterPart{Types: followedTypes()},
			Timeline:    &mautrix.FilterPart{Types: timeline, Limit: syncTimelineLimit},
		},
	}
}

// run is the sync loop. It retries failures with a bounded backoff and
// returns when ctx ends.
func (b *bot) run(ctx context.Context) error {
	defer b.markReady()
	var filterID, since string
	failures := 0
	fail := func(what string, err error) bool {
		if ctx.Err() != nil {
			return false
		}
		failures++
		wait := backoff(failures)
		b.log.Warn("homeserver request failed", "request", what, "err", err, "retry_in", wait)
		return sleep(ctx, wait)
	}
	for ctx.Err() == nil {
		if b.self.Load() == nil {
			resp, err := b.whoami(ctx)
			if err != nil {
				if !fail("whoami", err) {
					return nil
				}
				continue
			}
			b.self.Store(&resp.UserID)
			b.cli.UserID = resp.UserID // filters live under the user
			b.log.Info("bot following rooms", "user", resp.UserID)
		}
		if filterID == "" {
			resp, err := b.cli.CreateFilter(ctx, syncFilter())
			if err != nil {
				if !fail("filter", err) {
					return nil
				}
				continue
			}
			filterID = resp.FilterID
		}
		resp, err := b.cli.FullSyncRequest(ctx, mautrix.ReqSync{
			Timeout:  int(syncTimeout / time.Millisecond),
			Since:    since,
			FilterID: filterID,
			Client:   b.cli.Client,
		})
		if err != nil {
			if errors.Is(err, mautrix.MUnknownToken) {
				b.log.Error("the bot's access token was refused")
			}
			if !fail("sync", err) {
				return nil
			}
			continue
		}
		failures = 0
		b.apply(ctx, resp)
		since = resp.NextBatch
		b.markReady()
	}
	return nil
}

func (b *bot) whoami(ctx context.Context) (*mautrix.RespWhoami, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	return b.cli.Whoami(ctx)
}

func (b *bot) markReady() { b.readyOnce.Do(func() { close(b.ready) }) }

// apply feeds one sync response to the model: state before timeline, put
// in the order they happened (syncOrder). Rooms it was invited to are
// joined; they appear under "join" in a later response.
func (b *bot) apply(ctx context.Context, resp *mautrix.RespSync) {
	for room, jr := range resp.Rooms.Join {
		evts := make([]*event.Event, 0, len(jr.State.Events)+len(jr.Timeline.Events)+len(jr.Sticky.Events))
		evts = append(evts, jr.State.Events...)
		evts = append(evts, jr.Timeline.Events...)
		evts = append(evts, jr.Sticky.Events...)
		for _, evt := range evts {
			if evt != nil && evt.RoomID == "" {
				evt.RoomID = room
			}
		}
		b.w.feed(room, syncOrder(evts), true)
		// The first response that names a joined room carries its whole
		// (filtered) state.
		b.w.setComplete(room)
		b.w.cmds.handle(room, jr.Timeline.Events)
	}
	for room := range resp.Rooms.Leave {
		b.log.Info("bot no longer in room", "room", room)
		b.w.forget(room)
	}
	for room := range resp.Rooms.Invite {
		b.join(ctx, room)
	}
}

// join accepts an invitation. A failure is logged; the invitation stays and
// is tried again after a restart.
func (b *bot) join(ctx context.Context, room id.RoomID) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if _, err := b.cli.JoinRoomByID(ctx, room); err != nil {
		if ctx.Err() == nil {
			b.log.Warn("cannot join room the bot was invited to", "room", room, "err", err)
		}
		return
	}
	b.log.Info("bot joined room", "room", room)
}

// load implements source: the bot cannot fetch rooms it is not in. Before
// the first sync after start-up it waits (briefly) for it.
func (b *bot) load(ctx context.Context, room id.RoomID, _ id.UserID) error {
	select {
	case <-b.ready:
	default:
		t := time.NewTimer(readyWait)
		defer t.Stop()
		select {
		case <-b.ready:
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if b.w.seen(room) {
		return nil
	}
	return errUnseen
}

// memberNow implements source, reading as the bot.
func (b *bot) memberNow(ctx context.Context, room id.RoomID, user id.UserID) (event.Membership, error) {
	return memberOf(ctx, b.cli, room, user)
}

// endCall implements source: a bot cannot write other users' state.
func (b *bot) endCall(context.Context, id.RoomID, id.UserID, string) error {
	return errCannotWrite
}

// local implements source.
func (b *bot) local(user id.UserID) bool {
	server := b.server
	if server == "" {
		self := b.self.Load()
		if self == nil {
			return false
		}
		server = self.Homeserver()
	}
	return user.Homeserver() == server
}

// clientFor implements source: a client without credentials.
func (b *bot) clientFor(id.UserID) *mautrix.Client {
	cli, _ := mautrix.NewClient(b.cli.HomeserverURL.String(), "", "")
	cli.Client = &http.Client{Timeout: requestTimeout}
	return cli
}

// notice implements replier: the bot posts an m.notice in room.
func (b *bot) notice(ctx context.Context, room id.RoomID, body string) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	_, err := b.cli.SendMessageEvent(ctx, room, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgNotice, Body: body})
	return err
}

// isSelf implements replier.
func (b *bot) isSelf(user id.UserID) bool {
	self := b.self.Load()
	return self != nil && *self == user
}
