package main

import (
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/livekit/protocol/auth"
)

// token prints an access token for one participant of one room, signed
// with a configured API key.
func token(args []string, sys system) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(sys.stderr)
	room := fs.String("room", "", "room `name` (required)")
	identity := fs.String("identity", "", "participant `identity` (required)")
	name := fs.String("name", "", "participant display `name`")
	ttl := fs.Duration("ttl", time.Hour, "how long the token stays valid")
	noPublish := fs.Bool("no-publish", false, "do not allow publishing audio or video")
	noSubscribe := fs.Bool("no-subscribe", false, "do not allow subscribing to others' tracks")
	admin := fs.Bool("admin", false, "allow administering the room")
	key := fs.String("key", "", "API `key` to sign with (default: the first configured key in sorted order)")
	dev := fs.Bool("dev", false, "use the development key devkey (as serve --dev)")
	path := fs.String("config", "", "YAML config `file` to read keys from")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case strings.TrimSpace(*room) == "":
		return usagef("token: --room is required")
	case strings.TrimSpace(*identity) == "":
		return usagef("token: --identity is required")
	case *ttl <= 0:
		return usagef("token: --ttl must be positive")
	}

	cfg, err := loadConfig(loadOptions{dev: *dev, path: *path, getenv: sys.getenv})
	if err != nil {
		return err
	}
	keys := slices.Sorted(maps.Keys(cfg.Keys))
	k := *key
	if k == "" {
		k = keys[0] // loadConfig guarantees at least one key
	}
	secret, ok := cfg.Keys[k]
	if !ok {
		return fmt.Errorf("token: API key %q is not configured (configured: %s)", k, strings.Join(keys, ", "))
	}

	// Set every permission explicitly: unset ones default to granted.
	grant := &auth.VideoGrant{
		RoomJoin:       true,
		Room:           *room,
		RoomAdmin:      *admin,
		CanPublish:     new(!*noPublish),
		CanSubscribe:   new(!*noSubscribe),
		CanPublishData: new(true),
	}
	at := auth.NewAccessToken(k, secret).
		SetIdentity(*identity).
		SetName(*name).
		SetValidFor(*ttl).
		SetVideoGrant(grant)
	jwt, err := at.ToJWT()
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	_, err = fmt.Fprintln(sys.stdout, jwt)
	return err
}
