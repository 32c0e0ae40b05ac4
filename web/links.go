package web

import (
	"bytes"
	"cmp"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Slugs. A slug is base64url (no padding) of a random id followed by an
// HMAC-SHA256 tag over the id, truncated. The tag lets the server refuse a
// forged or tampered slug before it looks in the store, so the store cannot
// be probed; the id alone would already be unguessable.
const (
	// slugIDLen is the random part: 96 bits, so that guessing a live link
	// is hopeless even with millions of links and unlimited tries.
	slugIDLen = 12
	// slugTagLen is the truncated HMAC: 96 bits, far more than an online
	// forger could ever try (NIST SP 800-107 §5.3.4 allows 64).
	slugTagLen = 12
	// slugLen is the length of a slug in characters: 24 bytes of base64
	// without padding.
	slugLen = (slugIDLen + slugTagLen) * 4 / 3
	// slugKeyInfo is the HKDF label that derives the slug key from an API
	// secret (RFC 5869 §3.2), so that the key signs nothing else and a
	// slug reveals nothing about the secret.
	slugKeyInfo = "stoa meeting-link slug v1"
)

// Store defaults and limits.
const (
	// defaultLinkRetention is how long an expired or revoked link is kept,
	// so that opening it says "expired" or "revoked" rather than "not
	// found"; after that it is pruned.
	defaultLinkRetention = 7 * 24 * time.Hour
	// maxLinkRoomLen is the signalling server's limit on room names, in
	// bytes (LiveKit's default).
	maxLinkRoomLen = 256
	// linksFileVersion is the "version" of the links file Links writes.
	linksFileVersion = 1
)

// Errors of Links.Lookup and Links.Revoke. Callers branch on them with
// errors.Is; Lookup returns the link together with ErrLinkExpired and
// ErrLinkRevoked.
var (
	ErrLinkNotFound = errors.New("web: link not found")
	ErrLinkExpired  = errors.New("web: link expired")
	ErrLinkRevoked  = errors.New("web: link revoked")
)

// Link is a meeting link: https://<stoa>/j/<Slug> lets whoever opens it
// join Room with the rights below until ExpiresAt. Its JSON form is the
// links file's.
type Link struct {
	Slug      string    `json:"slug"`
	Room      string    `json:"room"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// ViewOnly guests may subscribe and send data (chat) but not publish.
	ViewOnly bool `json:"view_only"`
	// E2EE says the link was made for an end-to-end encrypted meeting. The
	// key travels only in the URL fragment; the server never sees it.
	E2EE bool `json:"e2ee"`
	// RequireApproval is reserved for a waiting room; always false for now.
	RequireApproval bool      `json:"require_approval,omitempty"`
	Revoked         bool      `json:"revoked,omitempty"`
	RevokedAt       time.Time `json:"revoked_at,omitzero"`
}

// State returns "revoked", "expired" or "active" at now.
func (l *Link) State(now time.Time) string {
	switch {
	case l.Revoked:
		return "revoked"
	case !now.Before(l.ExpiresAt):
		return "expired"
	default:
		return "active"
	}
}

// LinkOptions are what the creator of a link chooses.
type LinkOptions struct {
	Room            string
	TTL             time.Duration // must be positive
	ViewOnly        bool
	E2EE            bool
	RequireApproval bool
}

// LinksConfig configures a Links store.
type LinksConfig struct {
	// Secrets are the server's API secrets (at least one). Slugs are signed
	// with a key derived from the first and accepted if they verify with a
	// key derived from any, so links survive a key rotation for as long
	// as the old secret stays configured.
	Secrets []string
	// Path, if set, is a JSON file that holds the links across restarts.
	// NewLinks loads it if it exists; every change rewrites it atomically
	// with mode 0600 (slugs are credentials). Default: memory only.
	Path string
	// Retention is how long expired and revoked links are kept to answer
	// "expired" or "revoked", then forgotten. Default 7 days.
	Retention time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Links is the store of meeting links. Its methods may be called from any
// goroutine; the Links they return are copies that the caller owns.
type Links struct {
	keys      [][]byte // slug keys, one per secret; keys[0] signs. Read-only.
	path      string
	retention time.Duration
	now       func() time.Time

	saveMu sync.Mutex // serialises writes of the file; taken before mu

	mu    sync.Mutex // guards the following fields
	links map[string]Link
}

// NewLinks returns a store configured by cfg, loaded from cfg.Path if that
// file exists.
func NewLinks(cfg LinksConfig) (*Links, error) {
	if len(cfg.Secrets) == 0 {
		return nil, errors.New("web: links: no API secret to sign slugs with")
	}
	s := &Links{
		path:      cfg.Path,
		retention: cfg.Retention,
		now:       cfg.Now,
		links:     map[string]Link{},
	}
	if s.retention <= 0 {
		s.retention = defaultLinkRetention
	}
	if s.now == nil {
		s.now = time.Now
	}
	for _, secret := range cfg.Secrets {
		if secret == "" {
			return nil, errors.New("web: links: empty API secret")
		}
		k, err := hkdf.Key(sha256.New, []byte(secret), nil, slugKeyInfo, sha256.Size)
		if err != nil {
			return nil, fmt.Errorf("web: links: derive slug key: %w", err)
		}
		s.keys = append(s.keys, k)
	}
	if s.path != "" {
		if err := s.load(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Create makes a new link and, with a file, saves it before returning.
func (s *Links) Create(o LinkOptions) (Link, error) {
	if err := checkRoomName(o.Room); err != nil {
		return Link{}, err
	}
	if o.TTL <= 0 {
		return Link{}, fmt.Errorf("web: link ttl %v is not positive", o.TTL)
	}
	now := s.clock()
	l := Link{
		Slug:            s.newSlug(),
		Room:            o.Room,
		CreatedAt:       now,
		ExpiresAt:       now.Add(o.TTL),
		ViewOnly:        o.ViewOnly,
		E2EE:            o.E2EE,
		RequireApproval: o.RequireApproval,
	}
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.mu.Lock()
	s.pruneLocked(now)
	s.links[l.Slug] = l
	s.mu.Unlock()
	if err := s.saveSerialised(); err != nil {
		s.mu.Lock()
		delete(s.links, l.Slug)
		s.mu.Unlock()
		return Link{}, err
	}
	return l, nil
}

// Lookup returns the link of slug. A slug that does not verify, or that
// verifies but is not stored (never was, or pruned), gives ErrLinkNotFound
// and a zero Link; a revoked or expired one gives the link together with
// ErrLinkRevoked or ErrLinkExpired.
func (s *Links) Lookup(slug string) (Link, error) {
	if !s.verify(slug) {
		return Link{}, ErrLinkNotFound
	}
	s.mu.Lock()
	l, ok := s.links[slug]
	s.mu.Unlock()
	now := s.now()
	switch {
	case !ok || s.pastRetention(&l, now):
		return Link{}, ErrLinkNotFound
	case l.Revoked:
		return l, ErrLinkRevoked
	case !now.Before(l.ExpiresAt):
		return l, ErrLinkExpired
	}
	return l, nil
}

// Revoke marks the link of slug revoked, so that Lookup refuses it from now
// on, and returns it. Revoking a revoked link does nothing. If the file
// cannot be written, the link stays revoked in memory and the error says so.
func (s *Links) Revoke(slug string) (Link, error) {
	if !s.verify(slug) {
		return Link{}, ErrLinkNotFound
	}
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.mu.Lock()
	l, ok := s.links[slug]
	if !ok || l.Revoked {
		s.mu.Unlock()
		if !ok {
			return Link{}, ErrLinkNotFound
		}
		return l, nil
	}
	l.Revoked, l.RevokedAt = true, s.clock()
	s.links[slug] = l
	s.mu.Unlock()
	if err := s.saveSerialised(); err != nil {
		return l, fmt.Errorf("link revoked until restart only: %w", err)
	}
	return l, nil
}

// List returns the stored links of room, or of every room if room is "",
// oldest first. Expired and revoked links are included for the retention.
func (s *Links) List(room string) []Link {
	now := s.now()
	s.mu.Lock()
	out := make([]Link, 0, len(s.links))
	for _, l := range s.links {
		if (room == "" || l.Room == room) && !s.pastRetention(&l, now) {
			out = append(out, l)
		}
	}
	s.mu.Unlock()
	sortLinks(out)
	return out
}

// clock returns the time to store: UTC, without a monotonic reading, so
// that a link reads back from the file exactly as it was written.
func (s *Links) clock() time.Time { return s.now().Round(0).UTC() }

// newSlug returns a fresh slug signed with the first key.
func (s *Links) newSlug() string {
	b := make([]byte, slugIDLen, slugIDLen+slugTagLen)
	for {
		_, _ = rand.Read(b) // never fails (crypto/rand docs)
		// The first character encodes the top 6 bits. A slug that starts
		// with '-' (62) would read as a flag on command lines ("stoa link
		// revoke SLUG"), so draw again: it costs 1/64 of the id space.
		if b[0]>>2 != 62 {
			break
		}
	}
	b = append(b, slugTag(s.keys[0], b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// verify reports whether slug is well-formed and carries a valid tag under
// one of the keys. The comparison takes constant time.
func (s *Links) verify(slug string) bool {
	if len(slug) != slugLen {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(slug)
	// The decoder skips '\r' and '\n', so a slug holding them is short.
	if err != nil || len(b) != slugIDLen+slugTagLen {
		return false
	}
	id, tag := b[:slugIDLen], b[slugIDLen:]
	ok := false
	for _, k := range s.keys {
		if hmac.Equal(tag, slugTag(k, id)) {
			ok = true
		}
	}
	return ok
}

func slugTag(key, id []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(id)
	return m.Sum(nil)[:slugTagLen]
}

// pruneLocked forgets links that expired or were revoked more than the
// retention ago.
func (s *Links) pruneLocked(now time.Time) {
	for slug, l := range s.links {
		if s.pastRetention(&l, now) {
			delete(s.links, slug)
		}
	}
}

// pastRetention reports whether l ended (expired or was revoked) more than
// the retention before now. Such a link is treated as gone even before
// pruneLocked, which runs only when links change, removes it.
func (s *Links) pastRetention(l *Link, now time.Time) bool {
	end := l.ExpiresAt
	if l.Revoked && l.RevokedAt.Before(end) {
		end = l.RevokedAt
	}
	return now.Sub(end) > s.retention
}

// linksFile is the JSON form of the links file.
type linksFile struct {
	Version int    `json:"version"`
	Links   []Link `json:"links"`
}

// saveSerialised writes every link to the file, if there is one. The caller
// holds saveMu, not mu, and has made its change before calling, so the file
// always ends up with the latest state.
func (s *Links) saveSerialised() error {
	if s.path == "" {
		return nil
	}
	f := linksFile{Version: linksFileVersion, Links: s.List("")}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("links file %s: %w", s.path, err)
	}
	if err := writeFileAtomic(s.path, append(data, '\n')); err != nil {
		return fmt.Errorf("links file: %w", err)
	}
	return nil
}

// writeFileAtomic replaces path with data, mode 0600: a temporary file in
// the same directory, synced, then renamed over path, so that a crash
// leaves either the old or the new file.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp") // mode 0600
	if err != nil {
		return err
	}
	name := tmp.Name()
	_, werr := tmp.Write(data)
	if werr == nil {
		werr = tmp.Chmod(0o600)
	}
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(name, path)
	}
	if werr != nil {
		os.Remove(name)
		return werr
	}
	// Make the rename durable. Not every file system supports syncing a
	// directory; the file itself is complete either way.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// load reads the file, if it exists, and drops what is past retention.
func (s *Links) load() error {
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("links file: %w", err)
	}
	var f linksFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return fmt.Errorf("links file %s: %w", s.path, err)
	}
	if f.Version != linksFileVersion {
		return fmt.Errorf("links file %s: version %d, want %d", s.path, f.Version, linksFileVersion)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, l := range f.Links {
		if len(l.Slug) != slugLen || checkRoomName(l.Room) != nil {
			return fmt.Errorf("links file %s: link %d is malformed", s.path, i+1)
		}
		s.links[l.Slug] = l
	}
	s.pruneLocked(s.now())
	return nil
}

func sortLinks(ls []Link) {
	slices.SortFunc(ls, func(a, b Link) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.Slug, b.Slug))
	})
}

// checkRoomName accepts what the signalling server accepts as a room name
// and refuses control characters, which no one types.
func checkRoomName(room string) error {
	switch {
	case room == "":
		return errors.New("room is required")
	case len(room) > maxLinkRoomLen:
		return fmt.Errorf("room name is longer than %d bytes", maxLinkRoomLen)
	case !utf8.ValidString(room):
		return errors.New("room name is not valid UTF-8")
	case strings.IndexFunc(room, unicode.IsControl) >= 0:
		return errors.New("room name holds a control character")
	}
	return nil
}
