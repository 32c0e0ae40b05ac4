package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// LinkMaker creates meeting links for the chat command "!stoa link". The
// auth package does not know how links are stored; cmd/stoa wires the web
// package's store behind this interface.
type LinkMaker interface {
	// MakeLink creates a link to the SFU room room, valid for ttl, and
	// returns its full URL.
	MakeLink(room string, ttl time.Duration, viewOnly bool) (url string, err error)
}

const (
	// linkCommandPrefix starts the chat command that creates a link.
	linkCommandPrefix = "!stoa link"
	// defaultCommandLinkTTL is a link's lifetime when the command gives
	// none, as the links API's default.
	defaultCommandLinkTTL = 24 * time.Hour
	// maxCommandLinkTTL caps the lifetime a command may ask for, as the
	// links API's default maximum.
	maxCommandLinkTTL = 366 * 24 * time.Hour
	// linkEvery is the least time between two links made in one room, and
	// between two refusals to one user in one room.
	linkEvery = 10 * time.Second
	// maxSeenCommands bounds the event IDs remembered to ignore commands
	// the homeserver delivers again.
	maxSeenCommands = 1024
)

// linkCommand is a parsed "!stoa link [view-only] [TTL]".
type linkCommand struct {
	ttl      time.Duration
	viewOnly bool
}

// parseLinkCommand parses body. ok is false when body is not the link
// command at all; err is set when it is, but its arguments are wrong.
func parseLinkCommand(body string) (cmd linkCommand, ok bool, err error) {
	fields := strings.Fields(body)
	if len(fields) < 2 || fields[0] != "!stoa" || fields[1] != "link" {
		return linkCommand{}, false, nil
	}
	cmd.ttl = defaultCommandLinkTTL
	ttlSet := false
	for _, f := range fields[2:] {
		switch strings.ToLower(f) {
		case "view-only", "viewonly", "view":
			cmd.viewOnly = true
			continue
		}
		if ttlSet {
			return linkCommand{}, true, fmt.Errorf("unexpected %q", f)
		}
		d, perr := parseCommandTTL(f)
		if perr != nil {
			return linkCommand{}, true, perr
		}
		cmd.ttl, ttlSet = d, true
	}
	return cmd, true, nil
}

// parseCommandTTL parses a Go duration ("2h", "90m") or a number of days
// ("7d").
func parseCommandTTL(s string) (time.Duration, error) {
	var d time.Duration
	if n, isDays := strings.CutSuffix(s, "d"); isDays {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 || days > int(maxCommandLinkTTL/(24*time.Hour)) {
			return 0, fmt.Errorf("%q is not a lifetime such as 2h, 90m or 7d", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is not a lifetime such as 2h, 90m or 7d", s)
		}
	}
	switch {
	case d < time.Minute:
		return 0, errors.New("the lifetime must be at least a minute")
	case d > maxCommandLinkTTL:
		return 0, fmt.Errorf("the lifetime must be at most %d days", int(maxCommandLinkTTL/(24*time.Hour)))
	}
	return d, nil
}

// replier is a source that can post a notice in a room.
type replier interface {
	// notice sends body as an m.notice in room.
	notice(ctx context.Context, room id.RoomID, body string) error
	// isSelf reports whether user is the account the source acts as.
	isSelf(user id.UserID) bool
}

// linkCommands answers "!stoa link" messages seen by the watcher.
type linkCommands struct {
	w       *roomWatcher
	log     *slog.Logger
	maker   LinkMaker
	admin   *int // Config.AdminPowerLevel
	started time.Time
	every   time.Duration

	mu      sync.Mutex // guards the fields below
	ctx     context.Context
	wg      sync.WaitGroup
	seen    map[id.EventID]struct{}
	order   []id.EventID // seen, oldest first
	lastAt  map[id.RoomID]time.Time
	refused map[memberKey]time.Time
}

func newLinkCommands(w *roomWatcher, cfg Config) *linkCommands {
	if cfg.Links == nil {
		return nil
	}
	return &linkCommands{
		w:       w,
		log:     w.log.With("component", "link-command"),
		maker:   cfg.Links,
		admin:   cfg.AdminPowerLevel,
		started: time.Now(),
		every:   linkEvery,
		seen:    map[id.EventID]struct{}{},
		lastAt:  map[id.RoomID]time.Time{},
		refused: map[memberKey]time.Time{},
	}
}

// start enables the commands until ctx ends; the returned function waits
// for the replies under way.
func (c *linkCommands) start(ctx context.Context) (wait func()) {
	if c == nil {
		return func() {}
	}
	c.mu.Lock()
	c.ctx = ctx
	c.mu.Unlock()
	return c.wg.Wait
}

// handle looks for link commands among evts, the timeline events of room
// the homeserver delivered. It does not block: each command is answered in
// its own goroutine.
func (c *linkCommands) handle(room id.RoomID, evts []*event.Event) {
	if c == nil {
		return
	}
	rp, ok := c.w.src.(replier)
	if !ok {
		return
	}
	for _, evt := range evts {
		if evt == nil || evt.Type != event.EventMessage || evt.StateKey != nil || evt.ID == "" {
			continue
		}
		if rp.isSelf(evt.Sender) || time.UnixMilli(evt.Timestamp).Before(c.started) {
			continue
		}
		msgType, _ := evt.Content.Raw["msgtype"].(string)
		body, _ := evt.Content.Raw["body"].(string)
		if msgType != string(event.MsgText) || !strings.HasPrefix(strings.TrimSpace(body), linkCommandPrefix) {
			continue
		}
		cmd, isCmd, perr := parseLinkCommand(body)
		if !isCmd {
			continue
		}
		c.mu.Lock()
		ctx := c.ctx
		if _, dup := c.seen[evt.ID]; dup || ctx == nil || ctx.Err() != nil {
			c.mu.Unlock()
			continue
		}
		c.markSeenLocked(evt.ID)
		c.wg.Add(1)
		c.mu.Unlock()
		go func() {
			defer c.wg.Done()
			c.answer(ctx, rp, room, evt.Sender, evt.ID, cmd, perr)
		}()
	}
}

func (c *linkCommands) markSeenLocked(evt id.EventID) {
	if len(c.order) >= maxSeenCommands {
		delete(c.seen, c.order[0])
		c.order = c.order[1:]
	}
	c.seen[evt] = struct{}{}
	c.order = append(c.order, evt)
}

// allow reports whether something rate limited by last[k] may happen now,
// and if so records it.
func allow[K comparable](last map[K]time.Time, k K, every time.Duration, now time.Time) bool {
	if t, ok := last[k]; ok && now.Sub(t) < every {
		return false
	}
	if len(last) >= 4096 {
		for k2, t := range last {
			if now.Sub(t) >= every {
				delete(last, k2)
			}
		}
	}
	last[k] = now
	return true
}

// answer checks sender's power level in room, makes the link and replies.
func (c *linkCommands) answer(ctx context.Context, rp replier, room id.RoomID, sender id.UserID, evtID id.EventID, cmd linkCommand, perr error) {
	log := c.log.With("room", room, "sender", sender, "event", evtID)
	ctx, cancel := context.WithTimeout(ctx, 2*requestTimeout)
	defer cancel()
	reply := func(body string) {
		if err := rp.notice(ctx, room, body); err != nil {
			log.Warn("cannot reply to link command", "err", err)
		}
	}
	level, kick, err := c.w.PowerLevels(ctx, room, sender)
	if err != nil {
		log.Warn("link command: no power levels", "err", err)
		return
	}
	admin := kick
	if c.admin != nil {
		admin = *c.admin
	}
	now := time.Now()
	if level < admin {
		c.mu.Lock()
		ok := allow(c.refused, memberKey{room, sender}, c.every, now)
		c.mu.Unlock()
		log.Info("link command refused", "level", level, "needed", admin)
		if ok {
			reply(fmt.Sprintf("Sorry, %s: creating a meeting link needs power level %d.", sender, admin))
		}
		return
	}
	if perr != nil {
		reply("Usage: !stoa link [view-only] [lifetime such as 2h, 90m or 7d]: " + perr.Error())
		return
	}
	c.mu.Lock()
	ok := allow(c.lastAt, room, c.every, now)
	c.mu.Unlock()
	if !ok {
		log.Info("link command rate limited")
		return
	}
	alias := roomAlias(room, roomSlot)
	url, err := c.maker.MakeLink(alias, cmd.ttl, cmd.viewOnly)
	if err != nil {
		log.Error("cannot make meeting link", "err", err)
		reply("Sorry, the meeting link could not be created.")
		return
	}
	log.Info("meeting link created by chat command", "sfu_room", alias, "ttl", cmd.ttl, "view_only", cmd.viewOnly)
	kind := "Meeting link"
	if cmd.viewOnly {
		kind = "View-only meeting link"
	}
	reply(fmt.Sprintf("%s for this room's call (valid for %s): %s", kind, formatTTL(cmd.ttl), url))
}

// formatTTL writes d as days, hours or minutes.
func formatTTL(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		if n := d / (24 * time.Hour); n == 1 {
			return "1 day"
		} else {
			return fmt.Sprintf("%d days", n)
		}
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}
