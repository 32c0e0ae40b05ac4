package main

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stoa-rtc/stoa/sfu"
	"github.com/stoa-rtc/stoa/signalling"
	"github.com/stoa-rtc/stoa/web"
)

// Default ports, the same as livekit-server's so that clients and firewall
// rules written for LiveKit work unchanged.
const (
	defaultPort    = 7880
	defaultUDPPort = 7882
	defaultTCPPort = 7881
)

// Dev-mode credentials, the same as livekit-server --dev. Public knowledge;
// never valid outside --dev unless a file or the environment repeats them.
const (
	devKey    = "devkey"
	devSecret = "secret"
)

// minSecretLen is the shortest secret serve accepts without a warning:
// 32 characters give an HS256 key of about 190 bits even from base62.
const minSecretLen = 32

// config is everything serve and token read from defaults, --dev, the YAML
// file, the environment and flags. The yaml tags are the file's keys;
// README.md lists them with their defaults and environment variables.
type config struct {
	// Port is the HTTP and WebSocket port. 0 picks a free port.
	Port int `yaml:"port"`
	// BindAddresses are the IP addresses the HTTP listener binds.
	// Empty means all interfaces.
	BindAddresses []string `yaml:"bind_addresses"`
	// RTC configures the media plane.
	RTC rtcConfig `yaml:"rtc"`
	// Keys maps API keys to secrets.
	Keys map[string]string `yaml:"keys"`
	// Room configures room lifetimes.
	Room roomConfig `yaml:"room"`
	// Logging configures the log.
	Logging loggingConfig `yaml:"logging"`
	// Matrix configures the MatrixRTC authorisation service.
	Matrix matrixConfig `yaml:"matrix"`
	// Links configures meeting links.
	Links linksConfig `yaml:"links"`

	// lkKey is the API key LIVEKIT_KEY named, which the authorisation
	// service signs with.
	lkKey string

	// dev records --dev: it relaxes validation and offers loopback ICE
	// candidates.
	dev bool
}

type rtcConfig struct {
	// UDPPort is the single UDP port of ICE. 0 picks a free port.
	UDPPort int `yaml:"udp_port"`
	// TCPPort is the ICE-TCP port. 0 picks a free port; -1 disables ICE-TCP.
	TCPPort int `yaml:"tcp_port"`
	// NodeIP, if set, is the public IP advertised in ICE candidates
	// instead of the host's own addresses (1:1 NAT).
	NodeIP string `yaml:"node_ip"`
	// BindAddress is the IP address the ICE sockets bind. Empty means all
	// interfaces.
	BindAddress string `yaml:"bind_address"`
}

type roomConfig struct {
	// EmptyTimeout closes a room nobody joined within this time.
	EmptyTimeout time.Duration `yaml:"empty_timeout"`
	// DepartureTimeout closes a room this long after its last participant left.
	DepartureTimeout time.Duration `yaml:"departure_timeout"`
}

// linksConfig is the "links" section: meeting links (web.API).
type linksConfig struct {
	// PublicURL is the WebSocket URL guests who join through a link connect
	// to (wss://stoa.example.org); links are its http(s) twin + /j/SLUG.
	// Default: matrix.public_url, else ws:// on the first bind address.
	PublicURL string `yaml:"public_url"`
	// Path is a JSON file that keeps links across restarts. Default: none,
	// links live in memory only.
	Path string `yaml:"path"`
}

type loggingConfig struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
}

// defaultConfig returns the settings before --dev, file, environment and
// flags are applied.
func defaultConfig() config {
	return config{
		Port: defaultPort,
		RTC: rtcConfig{
			UDPPort: defaultUDPPort,
			TCPPort: defaultTCPPort,
		},
		Room: roomConfig{
			// LiveKit's defaults, which clients expect.
			EmptyTimeout:     5 * time.Minute,
			DepartureTimeout: 20 * time.Second,
		},
		Logging: loggingConfig{Level: "info"},
	}
}

// applyDev applies the --dev defaults: loopback only, the well-known dev
// key, debug logging.
func (c *config) applyDev() {
	c.dev = true
	c.BindAddresses = []string{"127.0.0.1"}
	c.RTC.BindAddress = "127.0.0.1"
	c.Keys = map[string]string{devKey: devSecret}
	c.Logging.Level = "debug"
}

// loadOptions says where loadConfig reads from.
type loadOptions struct {
	dev    bool
	path   string              // YAML file; "" for none
	getenv func(string) string // environment
	binds  []string            // --bind values; nil for none
}

// loadConfig builds and validates a config from defaults, --dev, the file,
// the environment and flags, in that order.
func loadConfig(opts loadOptions) (config, error) {
	c := defaultConfig()
	if opts.dev {
		c.applyDev()
	}
	if opts.path != "" {
		if err := c.applyFile(opts.path); err != nil {
			return config{}, err
		}
	}
	if err := c.applyEnv(opts.getenv); err != nil {
		return config{}, err
	}
	if err := c.applyLKEnv(opts.getenv); err != nil {
		return config{}, err
	}
	if len(opts.binds) > 0 {
		// --bind moves both listeners: in dev it is the way to let other
		// machines on the LAN join, and they need media as well as HTTP.
		c.BindAddresses = slices.Clone(opts.binds)
		if len(opts.binds) == 1 {
			c.RTC.BindAddress = opts.binds[0]
		} else {
			c.RTC.BindAddress = ""
		}
	}
	if err := c.validate(); err != nil {
		return config{}, err
	}
	return c, nil
}

// applyFile decodes the YAML file at path over c. Keys the file does not
// mention keep their current value, except keys, which the file replaces
// as a whole when it has the section.
func (c *config) applyFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return c.decodeYAML(path, data)
}

func (c *config) decodeYAML(name string, data []byte) error {
	prevKeys := c.Keys
	c.Keys = nil

	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(c)
	switch {
	case errors.Is(err, io.EOF):
		// An empty file, or one with only comments.
	case err != nil:
		return fileError(name, err)
	default:
		var extra yaml.Node
		if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
			return fmt.Errorf("config %s: more than one YAML document", name)
		}
	}
	if c.Keys == nil {
		c.Keys = prevKeys
	}
	return nil
}

// fileError rewrites yaml's errors to name the file and, for unknown keys,
// the full dotted key instead of a Go type.
func fileError(name string, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("config %s: %w", name, err)
	}
	sections := sectionNames()
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		var line int
		var field, typ string
		if n, _ := fmt.Sscanf(e, "line %d: field %s not found in type %s", &line, &field, &typ); n == 3 {
			key := field
			if s, ok := sections[typ]; ok && s != "" {
				key = s + "." + field
			}
			e = fmt.Sprintf("line %d: unknown key %q", line, key)
		}
		msgs = append(msgs, fmt.Sprintf("config %s: %s", name, e))
	}
	return errors.New(strings.Join(msgs, "\n"))
}

// sectionNames maps the Go type names yaml puts in its errors to the YAML
// section they decode, "" for the top level.
func sectionNames() map[string]string {
	t := reflect.TypeFor[config]()
	names := map[string]string{t.String(): ""}
	for f := range t.Fields() {
		if f.Type.Kind() != reflect.Struct || !f.IsExported() {
			continue
		}
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		names[f.Type.String()] = tag
	}
	return names
}

// applyEnv applies the environment variables documented in README.md.
func (c *config) applyEnv(getenv func(string) string) error {
	for _, p := range []struct {
		name string
		dst  *int
	}{
		{"STOA_PORT", &c.Port},
		{"STOA_RTC_UDP_PORT", &c.RTC.UDPPort},
		{"STOA_RTC_TCP_PORT", &c.RTC.TCPPort},
	} {
		v := getenv(p.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%s: %q is not a port number", p.name, v)
		}
		*p.dst = n
	}
	if v := getenv("STOA_NODE_IP"); v != "" {
		c.RTC.NodeIP = strings.TrimSpace(v)
	}
	name, v := "STOA_KEYS", getenv("STOA_KEYS")
	if v == "" {
		name, v = "LIVEKIT_KEYS", getenv("LIVEKIT_KEYS")
	}
	if v != "" {
		keys, err := parseKeys(v)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		c.Keys = keys
	}
	return nil
}

// parseKeys parses "key: secret, key2: secret2" (entries may also be
// separated by newlines), as livekit-server does LIVEKIT_KEYS. Its errors
// never include a secret.
func parseKeys(s string) (map[string]string, error) {
	keys := make(map[string]string)
	entries := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' })
	for i, entry := range entries {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		k, secret, ok := strings.Cut(entry, ":")
		k, secret = strings.TrimSpace(k), strings.TrimSpace(secret)
		if !ok || k == "" || secret == "" {
			return nil, fmt.Errorf("entry %d is not of the form \"key: secret\"", i+1)
		}
		if _, dup := keys[k]; dup {
			return nil, fmt.Errorf("key %q is given twice", k)
		}
		keys[k] = secret
	}
	if len(keys) == 0 {
		return nil, errors.New("no \"key: secret\" entry")
	}
	return keys, nil
}

// validate reports the first setting that cannot work. Its errors never
// include a secret.
func (c *config) validate() error {
	if err := checkPort("port", c.Port, false); err != nil {
		return err
	}
	if err := checkPort("rtc.udp_port", c.RTC.UDPPort, false); err != nil {
		return err
	}
	if err := checkPort("rtc.tcp_port", c.RTC.TCPPort, true); err != nil {
		return err
	}
	for _, a := range c.BindAddresses {
		if net.ParseIP(a) == nil {
			return fmt.Errorf("bind_addresses: %q is not an IP address", a)
		}
	}
	if a := c.RTC.BindAddress; a != "" && net.ParseIP(a) == nil {
		return fmt.Errorf("rtc.bind_address: %q is not an IP address", a)
	}
	if ip := c.RTC.NodeIP; ip != "" && net.ParseIP(ip) == nil {
		return fmt.Errorf("rtc.node_ip: %q is not an IP address", ip)
	}
	if len(c.Keys) == 0 {
		return errors.New(`no API key: set "keys" in the config file or STOA_KEYS="key: secret", or run with --dev`)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Keys)) {
		if k == "" {
			return errors.New("keys: empty API key")
		}
		if c.Keys[k] == "" {
			return fmt.Errorf("keys: API key %q has an empty secret", k)
		}
	}
	if c.Room.EmptyTimeout < 0 {
		return fmt.Errorf("room.empty_timeout: %v is negative", c.Room.EmptyTimeout)
	}
	if c.Room.DepartureTimeout < 0 {
		return fmt.Errorf("room.departure_timeout: %v is negative", c.Room.DepartureTimeout)
	}
	if _, err := c.logLevel(); err != nil {
		return err
	}
	if u := c.Links.PublicURL; u != "" {
		if _, err := web.PageBase(u); err != nil {
			return fmt.Errorf("links.public_url: %w", err)
		}
	}
	return c.validateMatrix()
}

func checkPort(name string, port int, allowDisable bool) error {
	lo := 0
	if allowDisable {
		lo = -1
	}
	if port < lo || port > 65535 {
		hint := "0 to 65535"
		if allowDisable {
			hint += ", or -1 to disable"
		}
		return fmt.Errorf("%s: %d is out of range (%s)", name, port, hint)
	}
	return nil
}

// weakKeys returns, sorted, the API keys whose secrets are shorter than
// minSecretLen. It returns nil in dev mode, where short secrets are normal.
func (c *config) weakKeys() []string {
	if c.dev {
		return nil
	}
	var weak []string
	for _, k := range slices.Sorted(maps.Keys(c.Keys)) {
		if len(c.Keys[k]) < minSecretLen {
			weak = append(weak, k)
		}
	}
	return weak
}

func (c *config) logLevel() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.Logging.Level)); err != nil {
		return 0, fmt.Errorf("logging.level: %q is not debug, info, warn or error", c.Logging.Level)
	}
	return l, nil
}

// httpAddrs returns the host:port pairs the HTTP server listens on.
func (c *config) httpAddrs() []string {
	port := strconv.Itoa(c.Port)
	if len(c.BindAddresses) == 0 {
		return []string{net.JoinHostPort("", port)}
	}
	addrs := make([]string, len(c.BindAddresses))
	for i, a := range c.BindAddresses {
		addrs[i] = net.JoinHostPort(a, port)
	}
	return addrs
}

// localHostPort returns host:port of the HTTP listener at httpAddr for a
// client on this machine: an unspecified address becomes 127.0.0.1. With
// no address (nil), it is 127.0.0.1 and the configured port.
func (c *config) localHostPort(httpAddr net.Addr) string {
	host := "127.0.0.1"
	port := strconv.Itoa(c.Port)
	if a, ok := httpAddr.(*net.TCPAddr); ok {
		if !a.IP.IsUnspecified() {
			host = a.IP.String()
		}
		port = strconv.Itoa(a.Port)
	}
	return net.JoinHostPort(host, port)
}

// linksStore returns the meeting-link store's Config: every API secret,
// the first in sorted key order (which also signs guest tokens) first.
func (c *config) linksStore() web.LinksConfig {
	keys := slices.Sorted(maps.Keys(c.Keys))
	secrets := make([]string, len(keys))
	for i, k := range keys {
		secrets[i] = c.Keys[k]
	}
	return web.LinksConfig{Secrets: secrets, Path: c.Links.Path}
}

// linksAPI returns the meeting-link API's Config. httpAddr is the address
// serve listens on.
func (c *config) linksAPI(links *web.Links, httpAddr net.Addr, logger *slog.Logger) web.APIConfig {
	public := cmp.Or(c.Links.PublicURL, c.Matrix.PublicURL, "ws://"+c.localHostPort(httpAddr))
	return web.APIConfig{
		Links:     links,
		Keys:      maps.Clone(c.Keys),
		PublicURL: public,
		Logger:    logger.With("component", "links"),
	}
}

// signalling returns the server's Config. logger is shared by the
// signalling server and the SFU, each adding its own attributes.
func (c *config) signalling(logger *slog.Logger) signalling.Config {
	var nodeIPs []string
	if c.RTC.NodeIP != "" {
		nodeIPs = []string{c.RTC.NodeIP}
	}
	// Loopback candidates are useless to remote clients but the only ones
	// that work when ICE binds a loopback address or clients share the host.
	bind := net.ParseIP(c.RTC.BindAddress)
	loopback := c.dev || (bind != nil && bind.IsLoopback())
	return signalling.Config{
		Keys: maps.Clone(c.Keys),
		RTC: sfu.Config{
			BindIP:          c.RTC.BindAddress,
			UDPPort:         c.RTC.UDPPort,
			TCPPort:         c.RTC.TCPPort,
			NodeIPs:         nodeIPs,
			IncludeLoopback: loopback,
			Logger:          logger.With("component", "sfu"),
		},
		EmptyTimeout:     c.Room.EmptyTimeout,
		DepartureTimeout: c.Room.DepartureTimeout,
		Logger:           logger.With("component", "signalling"),
	}
}
