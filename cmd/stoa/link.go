package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/livekit/protocol/auth"

	"github.com/stoa-rtc/stoa/web"
)

const (
	// linkRequestTimeout bounds one call to the server's links API.
	linkRequestTimeout = 15 * time.Second
	// linkAdminTokenTTL is the lifetime of the admin token link mints for
	// each call: long enough for clock skew, short enough to be useless
	// if it leaks from a proxy's log.
	linkAdminTokenTTL = 5 * time.Minute
	// e2eeKeyLen is the size of the shared key of an end-to-end encrypted
	// link meeting, in bytes: 256 bits, which the page feeds to
	// livekit-client's ExternalE2EEKeyProvider.
	e2eeKeyLen = 32
)

const linkUsage = `Usage:
  stoa link create --room ROOM [--ttl 24h] [--view-only] [--e2ee] [flags]
  stoa link list [--room ROOM] [flags]
  stoa link revoke SLUG_OR_URL [flags]

Flags of every link command:
  --server URL   the running Stoa (default: http://127.0.0.1 and the configured port)
  --config FILE  YAML config to read API keys from
  --dev          use the development key devkey (as serve --dev)
  --key K        API key to sign the admin token with

Run "stoa link COMMAND -h" for all flags.
`

// link manages meeting links through the links API of a running server.
func link(ctx context.Context, args []string, sys system) error {
	if len(args) == 0 {
		fmt.Fprint(sys.stderr, linkUsage)
		return usagef("link: no command given")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "create":
		return linkCreate(ctx, rest, sys)
	case "list":
		return linkList(ctx, rest, sys)
	case "revoke":
		return linkRevoke(ctx, rest, sys)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(sys.stdout, linkUsage)
		return nil
	default:
		fmt.Fprint(sys.stderr, linkUsage)
		return usagef("link: unknown command %q", cmd)
	}
}

// linkFlags are the flags every link command has.
type linkFlags struct {
	server, path, key *string
	dev               *bool
}

func addLinkFlags(fs *flag.FlagSet) linkFlags {
	return linkFlags{
		server: fs.String("server", "", "`URL` of the running Stoa (default: http://127.0.0.1 and the configured port)"),
		path:   fs.String("config", "", "YAML config `file` to read API keys from"),
		key:    fs.String("key", "", "API `key` to sign the admin token with (default: the first configured key in sorted order)"),
		dev:    fs.Bool("dev", false, "use the development key devkey (as serve --dev)"),
	}
}

// linkClient calls a server's links API with an admin token.
type linkClient struct {
	base  string // scheme://host[:port][/prefix], no trailing slash
	token string
	http  *http.Client
}

// client reads the config, mints an admin token and returns a client for
// the server. cmd names the command in errors.
func (f linkFlags) client(cmd string, sys system) (*linkClient, error) {
	cfg, err := loadConfig(loadOptions{dev: *f.dev, path: *f.path, getenv: sys.getenv})
	if err != nil {
		return nil, err
	}
	keys := slices.Sorted(maps.Keys(cfg.Keys))
	k := *f.key
	if k == "" {
		k = keys[0] // loadConfig guarantees at least one key
	}
	secret, ok := cfg.Keys[k]
	if !ok {
		return nil, fmt.Errorf("%s: API key %q is not configured (configured: %s)", cmd, k, strings.Join(keys, ", "))
	}
	tok, err := auth.NewAccessToken(k, secret).
		SetIdentity("stoa-link-cli").
		SetValidFor(linkAdminTokenTTL).
		SetVideoGrant(&auth.VideoGrant{RoomCreate: true, RoomList: true}).
		ToJWT()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}

	base := *f.server
	if base == "" {
		if cfg.Port == 0 {
			return nil, usagef("%s: --server is required: the configured port is 0 (any free port)", cmd)
		}
		var addr net.Addr
		if len(cfg.BindAddresses) > 0 {
			addr = &net.TCPAddr{IP: net.ParseIP(cfg.BindAddresses[0]), Port: cfg.Port}
		}
		base = "http://" + cfg.localHostPort(addr)
	}
	base, err = serverURL(base)
	if err != nil {
		return nil, usagef("%s: --server: %v", cmd, err)
	}
	return &linkClient{base: base, token: tok, http: &http.Client{Timeout: linkRequestTimeout}}, nil
}

// serverURL normalises --server: host:port means http, ws and wss mean
// http and https.
func serverURL(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%q is not a URL such as http://127.0.0.1:7880", s)
	}
	switch u.Scheme {
	case "http", "https":
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	default:
		return "", fmt.Errorf("%q is not an http or https URL", s)
	}
	u.RawQuery, u.Fragment = "", ""
	return strings.TrimSuffix(u.String(), "/"), nil
}

// linkAPIError is an error answer of the links API.
type linkAPIError struct {
	Status  int    `json:"-"`
	Code    string `json:"error"`
	Message string `json:"message"`
}

func (e *linkAPIError) Error() string {
	return fmt.Sprintf("%s (%s, HTTP %d)", e.Message, e.Code, e.Status)
}

// do calls method on path with body, if not nil, as JSON and decodes a
// successful answer into out, if not nil.
func (c *linkClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the method and URL, which the message gives
		}
		return fmt.Errorf("cannot reach Stoa at %s: %w (is \"stoa serve\" running there? --server sets the address)", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("reading the answer of %s: %w", c.base, err)
	}
	if resp.StatusCode/100 != 2 {
		e := &linkAPIError{Status: resp.StatusCode}
		if json.Unmarshal(data, e) == nil && e.Code != "" {
			return e
		}
		if resp.StatusCode == http.StatusNotFound {
			return fmt.Errorf("%s has no meeting-link API (%s): is it Stoa, and recent enough?", c.base, resp.Status)
		}
		return fmt.Errorf("%s answered %s: %.200q", c.base, resp.Status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s answered %s with something else than a link: %w", c.base, resp.Status, err)
		}
	}
	return nil
}

// linkOptions names a link's options for the list, or "-".
func linkOptions(l *web.LinkInfo) string {
	var o []string
	if l.ViewOnly {
		o = append(o, "view-only")
	}
	if l.E2EE {
		o = append(o, "e2ee")
	}
	if len(o) == 0 {
		return "-"
	}
	return strings.Join(o, ",")
}

// linkCreate creates a link and prints its URL on stdout, alone on its
// line so that scripts can capture it.
func linkCreate(ctx context.Context, args []string, sys system) error {
	fs := flag.NewFlagSet("link create", flag.ContinueOnError)
	fs.SetOutput(sys.stderr)
	room := fs.String("room", "", "room `name` (required)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the link lets people join")
	viewOnly := fs.Bool("view-only", false, "guests may watch, listen and chat, but not publish")
	e2ee := fs.Bool("e2ee", false, "end-to-end encrypt the meeting with a key carried in the URL fragment, which the server never sees")
	common := addLinkFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case strings.TrimSpace(*room) == "":
		return usagef("link create: --room is required")
	case *ttl < time.Second:
		return usagef("link create: --ttl must be at least 1s")
	}
	c, err := common.client("link create", sys)
	if err != nil {
		return err
	}

	// The key is made here and goes only into the printed URL's fragment,
	// which browsers never send to the server.
	var key string
	if *e2ee {
		b := make([]byte, e2eeKeyLen)
		_, _ = rand.Read(b) // never fails (crypto/rand docs)
		key = base64.RawURLEncoding.EncodeToString(b)
	}
	body := map[string]any{"room": *room, "ttl": ttl.String(), "view_only": *viewOnly, "e2ee": *e2ee}
	var l web.LinkInfo
	if err := c.do(ctx, http.MethodPost, web.LinksPath, body, &l); err != nil {
		return fmt.Errorf("link create: %w", err)
	}
	if l.URL == "" {
		return fmt.Errorf("link create: %s answered without a link URL", c.base)
	}
	u := l.URL
	if key != "" {
		u += "#key=" + key
	}
	if _, err := fmt.Fprintln(sys.stdout, u); err != nil {
		return err
	}
	var notes []string
	if l.ViewOnly {
		notes = append(notes, "guests can watch, listen and chat but not publish")
	}
	if key != "" {
		notes = append(notes, "end-to-end encrypted: the key is only in this URL, so keep the whole URL; the server cannot show it again")
	}
	fmt.Fprintf(sys.stderr, "Link to room %q, valid until %s.\n", l.Room, l.ExpiresAt.Local().Format(time.RFC1123))
	for _, n := range notes {
		fmt.Fprintf(sys.stderr, "  %s\n", n)
	}
	return nil
}

// linkList prints the server's links, oldest first.
func linkList(ctx context.Context, args []string, sys system) error {
	fs := flag.NewFlagSet("link list", flag.ContinueOnError)
	fs.SetOutput(sys.stderr)
	room := fs.String("room", "", "only the links of room `name`")
	common := addLinkFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := common.client("link list", sys)
	if err != nil {
		return err
	}
	path := web.LinksPath
	if *room != "" {
		path += "?" + url.Values{"room": {*room}}.Encode()
	}
	var out struct {
		Links []web.LinkInfo `json:"links"`
	}
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return fmt.Errorf("link list: %w", err)
	}
	if len(out.Links) == 0 {
		fmt.Fprintln(sys.stderr, "No links.")
		return nil
	}
	tw := tabwriter.NewWriter(sys.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SLUG\tROOM\tSTATE\tEXPIRES\tOPTIONS")
	for _, l := range out.Links {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.Slug, l.Room, l.State, l.ExpiresAt.Local().Format("2006-01-02 15:04 MST"), linkOptions(&l))
	}
	return tw.Flush()
}

// linkRevoke revokes the link given by its slug or URL.
func linkRevoke(ctx context.Context, args []string, sys system) error {
	fs := flag.NewFlagSet("link revoke", flag.ContinueOnError)
	fs.SetOutput(sys.stderr)
	common := addLinkFlags(fs)
	// Flags may come before or after the link.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			// fs has already printed the error and the usage.
			return usagef("link revoke: %v", err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 1 {
		return usagef("link revoke: give exactly one link (its slug or URL), not %d", len(pos))
	}
	slug := linkSlug(pos[0])
	if slug == "" {
		return usagef("link revoke: %q holds no link slug", pos[0])
	}
	c, err := common.client("link revoke", sys)
	if err != nil {
		return err
	}
	if err := c.do(ctx, http.MethodDelete, web.LinksPath+"/"+url.PathEscape(slug), nil, nil); err != nil {
		return fmt.Errorf("link revoke: %w", err)
	}
	_, err = fmt.Fprintf(sys.stdout, "Revoked %s: nobody can join through it any more.\n", slug)
	return err
}

// linkSlug returns the slug of a link given as a slug or as its URL
// (https://stoa.example.org/j/SLUG#key=...).
func linkSlug(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndex(s, "/j/"); i >= 0 {
		s = s[i+len("/j/"):]
	}
	s, _, _ = strings.Cut(s, "#")
	s, _, _ = strings.Cut(s, "?")
	return strings.TrimSuffix(s, "/")
}
