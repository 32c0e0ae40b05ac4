package auth

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"
)

const (
	// openIDTimeout bounds one verification, discovery included.
	// lk-jwt-service allows 30 s; a client waiting that long has given up.
	openIDTimeout = 10 * time.Second
	// openIDCacheTTL is how long a verified token is trusted without asking
	// again. Element Call asks for a token two or three times per join with
	// the same OpenID token (MATRIXRTC.md §9); OpenID tokens are reusable
	// until they expire (§3.6), so a short cache loses nothing. Failures
	// are not cached.
	openIDCacheTTL = 30 * time.Second
	// openIDCacheSize bounds the cache; when it is full of live entries
	// new ones are not cached.
	openIDCacheSize = 4096
	// maxUserInfoSize bounds the userinfo response read.
	maxUserInfoSize = 64 << 10
)

// userInfoPath is the federation endpoint that names an OpenID token's
// owner (https://spec.matrix.org/v1.16/server-server-api/#openid).
const userInfoPath = "/_matrix/federation/v1/openid/userinfo"

// openIDVerifier verifies OpenID tokens against the homeserver that issued
// them. Safe for concurrent use.
type openIDVerifier struct {
	bases    map[string]string // server name -> base URL, read only
	plain    *http.Client      // for bases
	fed      *http.Client      // for resolved servers; dials dialAddr(ctx)
	resolver *serverResolver
	now      func() time.Time

	mu    sync.Mutex // guards the following fields
	cache map[[sha256.Size]byte]verifiedToken
}

// verifiedToken is a cache entry.
type verifiedToken struct {
	user    id.UserID
	expires time.Time
}

// newOpenIDVerifier returns a verifier that asks bases[server] for the
// tokens of server, and finds other servers by federation server discovery
// (.well-known/matrix/server, SRV, port 8448) and asks them over HTTPS, as
// lk-jwt-service does. tlsConf is the TLS configuration towards them; nil
// means the system's roots.
func newOpenIDVerifier(bases map[string]string, tlsConf *tls.Config) *openIDVerifier {
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	dialer := &net.Dialer{Timeout: openIDTimeout}
	fed := &http.Transport{
		// The connection goes to the resolved address; the URL carries
		// the name for the Host header and the certificate check.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			addr, ok := ctx.Value(dialAddrKey{}).(string)
			if !ok {
				return nil, errors.New("no resolved address")
			}
			return dialer.DialContext(ctx, network, addr)
		},
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: openIDTimeout,
		// Connections are pooled by URL host, which is not where they go:
		// "example.org" may be dialled at :8448 and "example.org:443" at
		// :443. Verifications are cached, so a fresh connection is cheap.
		DisableKeepAlives: true,
	}
	wellKnown := &http.Transport{TLSClientConfig: tlsConf, TLSHandshakeTimeout: openIDTimeout}
	return &openIDVerifier{
		bases: bases,
		plain: &http.Client{Timeout: openIDTimeout, CheckRedirect: noRedirect},
		fed:   &http.Client{Timeout: openIDTimeout, CheckRedirect: noRedirect, Transport: fed},
		resolver: &serverResolver{
			// .well-known may redirect; the spec allows following redirects.
			wellKnown: &http.Client{Timeout: openIDTimeout, Transport: wellKnown},
			lookupSRV: net.DefaultResolver.LookupSRV,
			now:       time.Now,
			cache:     map[string]resolvedServer{},
		},
		now:   time.Now,
		cache: map[[sha256.Size]byte]verifiedToken{},
	}
}

// dialAddrKey is the context key of the address the federation client
// dials.
type dialAddrKey struct{}

// verify returns the user an OpenID token of server belongs to. The user's
// server name is server exactly. Every failure wraps errUnauthorized; the
// rest of the message is for the log and never contains the token.
func (v *openIDVerifier) verify(ctx context.Context, server, token string) (id.UserID, error) {
	if !id.ValidateServerName(server) {
		return "", fmt.Errorf("%w: invalid matrix_server_name %q", errUnauthorized, server)
	}
	key := sha256.Sum256([]byte(server + "\x00" + token))
	if user, ok := v.cached(key); ok {
		return user, nil
	}
	ctx, cancel := context.WithTimeout(ctx, openIDTimeout)
	defer cancel()
	user, err := v.lookup(ctx, server, token)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", errUnauthorized, server, err)
	}
	if err := checkUser(user, server); err != nil {
		return "", fmt.Errorf("%w: %s: %w", errUnauthorized, server, err)
	}
	v.store(key, user)
	return user, nil
}

// lookup asks server's userinfo endpoint whose token it is.
func (v *openIDVerifier) lookup(ctx context.Context, server, token string) (id.UserID, error) {
	var client *http.Client
	var u string
	if base, ok := v.bases[server]; ok {
		client, u = v.plain, strings.TrimRight(base, "/")+userInfoPath
	} else {
		dst, err := v.resolver.resolve(ctx, server)
		if err != nil {
			return "", err
		}
		client, u = v.fed, "https://"+dst.host+userInfoPath
		ctx = context.WithValue(ctx, dialAddrKey{}, dst.addr)
	}
	u += "?access_token=" + url.QueryEscape(token)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", errors.New("bad userinfo URL") // the error would quote the token
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // its text quotes the URL, token included
			err = ue.Err
		}
		return "", fmt.Errorf("userinfo: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxUserInfoSize))
	if err != nil {
		return "", fmt.Errorf("userinfo: reading response: %w", err)
	}
	var info struct {
		Sub     string `json:"sub"`
		ErrCode string `json:"errcode"`
	}
	jsonErr := json.Unmarshal(body, &info)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("userinfo: HTTP %d %s", resp.StatusCode, info.ErrCode)
	}
	if jsonErr != nil {
		return "", fmt.Errorf("userinfo: %w", jsonErr)
	}
	return id.UserID(info.Sub), nil
}

// checkUser checks that user is a valid user ID of server, exactly
// (MATRIXRTC.md §3.6; matrix-spec PR #2288), whose localpart is printable
// ASCII, as user IDs are even in their historical form, so that tokens
// naming it stay ASCII.
func checkUser(user id.UserID, server string) error {
	local, hs, err := user.ParseAndValidateRelaxed()
	if err != nil {
		return fmt.Errorf("userinfo: bad sub: %w", err)
	}
	if hs != server {
		return fmt.Errorf("userinfo: sub %s is not of server %s", user, server)
	}
	if local == "" || !printableASCII(local) {
		return fmt.Errorf("userinfo: bad sub %q", user)
	}
	return nil
}

// printableASCII reports whether s is made of '!' to '~' only.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func (v *openIDVerifier) cached(key [sha256.Size]byte) (id.UserID, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.cache[key]
	if !ok || !v.now().Before(e.expires) {
		return "", false
	}
	return e.user, true
}

func (v *openIDVerifier) store(key [sha256.Size]byte, user id.UserID) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	if len(v.cache) >= openIDCacheSize {
		for k, e := range v.cache {
			if !now.Before(e.expires) {
				delete(v.cache, k)
			}
		}
		if len(v.cache) >= openIDCacheSize {
			return
		}
	}
	v.cache[key] = verifiedToken{user: user, expires: now.Add(openIDCacheTTL)}
}

// Server discovery, as https://spec.matrix.org/v1.16/server-server-api/#resolving-server-names
// describes it. mautrix's federation package implements it too, but
// importing it pulls in a module this one does not require (rs/xid).
const (
	// resolutionTTL is how long a resolution is kept. The spec lets a
	// .well-known answer be cached for up to 48 h; a short time lets a
	// moved homeserver be found again soon.
	resolutionTTL = 10 * time.Minute
	// resolutionErrorTTL is how long a resolution made without a
	// .well-known answer is kept, so that a passing failure heals.
	resolutionErrorTTL = time.Minute
	// resolutionCacheSize bounds the cache; when it is full of live
	// entries new ones are not cached.
	resolutionCacheSize = 1024
	// maxWellKnownSize bounds the .well-known response read (mautrix's
	// WellKnownMaxSize).
	maxWellKnownSize = 50 << 10
	// defaultFederationPort is the port of a server name without one.
	defaultFederationPort = 8448
)

// serverResolver finds where a server name's federation API is. Safe for
// concurrent use.
type serverResolver struct {
	wellKnown *http.Client // fetches https://{name}/.well-known/matrix/server
	lookupSRV func(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	now       func() time.Time

	mu    sync.Mutex // guards the following fields
	cache map[string]resolvedServer
}

// resolvedServer is where to send a server's federation requests.
type resolvedServer struct {
	host    string // URL host: Host header and certificate name, with port if named
	addr    string // host:port to dial
	expires time.Time
}

// resolve returns where server's federation API is.
func (r *serverResolver) resolve(ctx context.Context, server string) (resolvedServer, error) {
	r.mu.Lock()
	dst, ok := r.cache[server]
	r.mu.Unlock()
	if ok && r.now().Before(dst.expires) {
		return dst, nil
	}
	dst, ttl, err := r.discover(ctx, server)
	if err != nil {
		return resolvedServer{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	dst.expires = now.Add(ttl)
	if len(r.cache) >= resolutionCacheSize {
		for k, e := range r.cache {
			if !now.Before(e.expires) {
				delete(r.cache, k)
			}
		}
	}
	if len(r.cache) < resolutionCacheSize {
		r.cache[server] = dst
	}
	return dst, nil
}

// discover runs the spec's steps for server, returning how long the result
// may be kept.
func (r *serverResolver) discover(ctx context.Context, server string) (resolvedServer, time.Duration, error) {
	p := parseServerName(server)
	if p == nil {
		return resolvedServer{}, 0, fmt.Errorf("invalid server name %q", server)
	}
	// Steps 1 and 2: an IP literal, or a name with a port.
	if p.Type != id.ServerNameDNS || p.Port != 0 {
		return direct(server, p), resolutionTTL, nil
	}
	// Step 3: .well-known delegation.
	name, ttl := p.Host, resolutionTTL
	if delegated, err := r.fetchWellKnown(ctx, p.Host); err != nil {
		ttl = resolutionErrorTTL
	} else {
		d := parseServerName(delegated) // valid: checked by fetchWellKnown
		// Steps 3.1 and 3.2.
		if d.Type != id.ServerNameDNS || d.Port != 0 {
			return direct(delegated, d), ttl, nil
		}
		name = d.Host
	}
	// Steps 3.3 and 3.4, or 4 and 5: SRV records; the certificate is
	// still checked against name.
	if addr, ok := r.srv(ctx, name); ok {
		return resolvedServer{host: name, addr: addr}, ttl, nil
	}
	// Step 3.5 or 6.
	return resolvedServer{host: name, addr: net.JoinHostPort(name, fmt.Sprint(defaultFederationPort))}, ttl, nil
}

// direct is the resolution of a server name that is an IP literal or has a
// port: itself, at its port or 8448.
func direct(name string, p *id.ParsedServerName) resolvedServer {
	port := p.Port
	if port == 0 {
		port = defaultFederationPort
	}
	return resolvedServer{host: name, addr: net.JoinHostPort(p.Host, fmt.Sprint(port))}
}

// parseServerName parses a server name (https://spec.matrix.org/v1.16/appendices/#server-name),
// or returns nil.
func parseServerName(name string) *id.ParsedServerName {
	p := id.ParseServerName(name)
	if p == nil || p.Port > 65535 || (p.Port == 0 && strings.HasSuffix(name, ":0")) {
		return nil
	}
	return p
}

// fetchWellKnown returns the m.server of https://{host}/.well-known/matrix/server.
func (r *serverResolver) fetchWellKnown(ctx context.Context, host string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+"/.well-known/matrix/server", nil)
	if err != nil {
		return "", err
	}
	resp, err := r.wellKnown.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf(".well-known: HTTP %d", resp.StatusCode)
	}
	var wk struct {
		Server string `json:"m.server"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxWellKnownSize)).Decode(&wk); err != nil {
		return "", fmt.Errorf(".well-known: %w", err)
	}
	if parseServerName(wk.Server) == nil {
		return "", fmt.Errorf(".well-known: invalid m.server %q", wk.Server)
	}
	return wk.Server, nil
}

// srv returns the address of name's first _matrix-fed._tcp SRV record, or
// failing that, of its deprecated _matrix._tcp one.
func (r *serverResolver) srv(ctx context.Context, name string) (string, bool) {
	for _, service := range []string{"matrix-fed", "matrix"} {
		_, recs, err := r.lookupSRV(ctx, service, "tcp", name)
		if err == nil && len(recs) > 0 && recs[0].Target != "." {
			return net.JoinHostPort(strings.TrimSuffix(recs[0].Target, "."), fmt.Sprint(recs[0].Port)), true
		}
	}
	return "", false
}
