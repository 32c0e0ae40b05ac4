package web

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	linkTestSecret  = "0123456789abcdef0123456789abcdef"
	linkTestSecret2 = "fedcba9876543210fedcba9876543210"
	base64URLChars  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)

// linkClock is a settable clock for Links and API. Safe for concurrent use.
type linkClock struct {
	mu sync.Mutex // guards the following fields
	t  time.Time
}

func newLinkClock() *linkClock {
	return &linkClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
}

func (c *linkClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *linkClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestLinks(t *testing.T, cfg LinksConfig) *Links {
	t.Helper()
	if cfg.Secrets == nil {
		cfg.Secrets = []string{linkTestSecret}
	}
	s, err := NewLinks(cfg)
	if err != nil {
		t.Fatalf("NewLinks: %v", err)
	}
	return s
}

func mustCreate(t *testing.T, s *Links, o LinkOptions) Link {
	t.Helper()
	if o.TTL == 0 {
		o.TTL = time.Hour
	}
	l, err := s.Create(o)
	if err != nil {
		t.Fatalf("Create(%+v): %v", o, err)
	}
	return l
}

func TestSlugFormat(t *testing.T) {
	s := newTestLinks(t, LinksConfig{})
	seen := map[string]bool{}
	for range 500 {
		l := mustCreate(t, s, LinkOptions{Room: "r"})
		if len(l.Slug) != slugLen || slugLen != 32 {
			t.Fatalf("slug %q has %d characters, want 32", l.Slug, len(l.Slug))
		}
		if strings.Trim(l.Slug, base64URLChars) != "" {
			t.Fatalf("slug %q is not base64url", l.Slug)
		}
		if l.Slug[0] == '-' {
			t.Fatalf("slug %q starts with a dash", l.Slug)
		}
		if seen[l.Slug] {
			t.Fatalf("slug %q made twice", l.Slug)
		}
		seen[l.Slug] = true
		if got, err := s.Lookup(l.Slug); err != nil || got != l {
			t.Fatalf("Lookup(%q) = %+v, %v; want %+v", l.Slug, got, err, l)
		}
	}
}

func TestSlugTamperEveryByte(t *testing.T) {
	s := newTestLinks(t, LinksConfig{})
	l := mustCreate(t, s, LinkOptions{Room: "r"})
	refuse := func(slug string) {
		t.Helper()
		if got, err := s.Lookup(slug); !errors.Is(err, ErrLinkNotFound) || got != (Link{}) {
			t.Errorf("Lookup(%q) = %+v, %v; want ErrLinkNotFound", slug, got, err)
		}
		if s.verify(slug) {
			t.Errorf("verify(%q) = true", slug)
		}
	}
	for i := range len(l.Slug) {
		for _, c := range []byte(base64URLChars + "=+/.~ \n") {
			if c != l.Slug[i] {
				refuse(l.Slug[:i] + string(c) + l.Slug[i+1:])
			}
		}
	}
	// Every bit of the decoded slug, id and tag alike.
	raw, err := base64.RawURLEncoding.DecodeString(l.Slug)
	if err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		for bit := range 8 {
			b := append([]byte(nil), raw...)
			b[i] ^= 1 << bit
			refuse(base64.RawURLEncoding.EncodeToString(b))
		}
	}
	for _, bad := range []string{
		"", l.Slug[:31], l.Slug + "A", l.Slug + "=", l.Slug[:30] + "\r\n",
		strings.ToUpper(l.Slug), "../" + l.Slug[3:], string(make([]byte, 32)),
	} {
		if bad != l.Slug {
			refuse(bad)
		}
	}
	// A well-formed slug with a valid tag that was never stored.
	if _, err := s.Lookup(s.newSlug()); !errors.Is(err, ErrLinkNotFound) {
		t.Errorf("Lookup of an unstored slug: %v, want ErrLinkNotFound", err)
	}
}

func TestSlugWrongKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "links.json")
	old := newTestLinks(t, LinksConfig{Secrets: []string{linkTestSecret}, Path: path})
	l := mustCreate(t, old, LinkOptions{Room: "r"})

	// Same file, other secret: the slug is stored but does not verify.
	other := newTestLinks(t, LinksConfig{Secrets: []string{linkTestSecret2}, Path: path})
	if _, err := other.Lookup(l.Slug); !errors.Is(err, ErrLinkNotFound) {
		t.Errorf("Lookup with the wrong key: %v, want ErrLinkNotFound", err)
	}
	if _, err := other.Revoke(l.Slug); !errors.Is(err, ErrLinkNotFound) {
		t.Errorf("Revoke with the wrong key: %v, want ErrLinkNotFound", err)
	}

	// Key rotation: the new secret signs, the old one still verifies.
	rotated := newTestLinks(t, LinksConfig{Secrets: []string{linkTestSecret2, linkTestSecret}, Path: path})
	if _, err := rotated.Lookup(l.Slug); err != nil {
		t.Errorf("Lookup after rotation: %v", err)
	}
	nl := mustCreate(t, rotated, LinkOptions{Room: "r"})
	if !other.verify(nl.Slug) || old.verify(nl.Slug) {
		t.Errorf("a new link is not signed with the first secret")
	}

	// A slug key is not the API secret itself.
	forger := &Links{keys: [][]byte{[]byte(linkTestSecret)}}
	if old.verify(forger.newSlug()) {
		t.Error("a slug signed with the raw API secret verifies")
	}
}

func TestLinkExpiry(t *testing.T) {
	clk := newLinkClock()
	s := newTestLinks(t, LinksConfig{Now: clk.Now, Retention: 24 * time.Hour})
	l := mustCreate(t, s, LinkOptions{Room: "r", TTL: time.Hour})
	if !l.CreatedAt.Equal(clk.Now()) || !l.ExpiresAt.Equal(clk.Now().Add(time.Hour)) {
		t.Fatalf("link times = %v, %v", l.CreatedAt, l.ExpiresAt)
	}
	clk.Advance(time.Hour - time.Nanosecond)
	if _, err := s.Lookup(l.Slug); err != nil {
		t.Fatalf("Lookup just before expiry: %v", err)
	}
	if st := l.State(clk.Now()); st != "active" {
		t.Errorf("State = %q, want active", st)
	}
	clk.Advance(time.Nanosecond)
	got, err := s.Lookup(l.Slug)
	if !errors.Is(err, ErrLinkExpired) || got.Slug != l.Slug {
		t.Fatalf("Lookup at expiry = %+v, %v; want the link and ErrLinkExpired", got, err)
	}
	if st := l.State(clk.Now()); st != "expired" {
		t.Errorf("State = %q, want expired", st)
	}
	// Kept through the retention, even when something else prunes...
	clk.Advance(24 * time.Hour)
	mustCreate(t, s, LinkOptions{Room: "other"})
	if _, err := s.Lookup(l.Slug); !errors.Is(err, ErrLinkExpired) {
		t.Fatalf("Lookup within retention: %v, want ErrLinkExpired", err)
	}
	// ...then gone, at once...
	clk.Advance(time.Second)
	if _, err := s.Lookup(l.Slug); !errors.Is(err, ErrLinkNotFound) {
		t.Fatalf("Lookup after retention: %v, want ErrLinkNotFound", err)
	}
	if n := len(s.List("r")); n != 0 {
		t.Errorf("List(r) has %d links after the retention", n)
	}
	// ...and pruned when the store next changes.
	mustCreate(t, s, LinkOptions{Room: "other"})
	s.mu.Lock()
	_, kept := s.links[l.Slug]
	s.mu.Unlock()
	if kept {
		t.Error("not pruned")
	}
	if n := len(s.List("r")); n != 0 {
		t.Errorf("List(r) has %d links after pruning", n)
	}
	if _, err := s.Create(LinkOptions{Room: "r"}); err == nil {
		t.Error("Create with ttl 0 succeeded")
	}
}

func TestLinkRevoke(t *testing.T) {
	clk := newLinkClock()
	s := newTestLinks(t, LinksConfig{Now: clk.Now, Retention: time.Hour})
	l := mustCreate(t, s, LinkOptions{Room: "r", TTL: 48 * time.Hour})
	keep := mustCreate(t, s, LinkOptions{Room: "r", TTL: 48 * time.Hour})
	clk.Advance(time.Minute)
	rl, err := s.Revoke(l.Slug)
	if err != nil || !rl.Revoked || !rl.RevokedAt.Equal(clk.Now()) {
		t.Fatalf("Revoke = %+v, %v", rl, err)
	}
	if got, err := s.Lookup(l.Slug); !errors.Is(err, ErrLinkRevoked) || !got.Revoked {
		t.Errorf("Lookup of a revoked link = %+v, %v; want ErrLinkRevoked", got, err)
	}
	if st := rl.State(clk.Now()); st != "revoked" {
		t.Errorf("State = %q, want revoked", st)
	}
	clk.Advance(time.Minute)
	if again, err := s.Revoke(l.Slug); err != nil || !again.RevokedAt.Equal(rl.RevokedAt) {
		t.Errorf("second Revoke = %+v, %v; want the first revocation, no error", again, err)
	}
	if _, err := s.Lookup(keep.Slug); err != nil {
		t.Errorf("another link was affected: %v", err)
	}
	if _, err := s.Revoke(s.newSlug()); !errors.Is(err, ErrLinkNotFound) {
		t.Errorf("Revoke of an unknown link: %v", err)
	}
	// A revoked link is pruned a retention after its revocation, long
	// before it would have expired.
	clk.Advance(2 * time.Hour)
	mustCreate(t, s, LinkOptions{Room: "r"})
	if _, err := s.Lookup(l.Slug); !errors.Is(err, ErrLinkNotFound) {
		t.Errorf("Lookup after retention: %v, want ErrLinkNotFound", err)
	}
	if _, err := s.Lookup(keep.Slug); err != nil {
		t.Errorf("a live link was pruned: %v", err)
	}
}

func TestLinksPersistence(t *testing.T) {
	clk := newLinkClock()
	dir := t.TempDir()
	path := filepath.Join(dir, "links.json")
	cfg := LinksConfig{Secrets: []string{linkTestSecret}, Path: path, Now: clk.Now}
	s := newTestLinks(t, cfg)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an empty store wrote its file: %v", err)
	}
	a := mustCreate(t, s, LinkOptions{Room: "alpha", TTL: time.Hour, ViewOnly: true})
	clk.Advance(time.Second)
	b := mustCreate(t, s, LinkOptions{Room: "beta", TTL: 2 * time.Hour, E2EE: true})
	clk.Advance(time.Second)
	if _, err := s.Revoke(a.Slug); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("file mode %v, want 0600", m)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("dir holds %d entries, want only links.json (temporary files left?)", len(ents))
	}

	re := newTestLinks(t, cfg)
	want, got := s.List(""), re.List("")
	if len(got) != 2 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("reloaded links:\n%+v\nwant\n%+v", got, want)
	}
	if _, err := re.Lookup(a.Slug); !errors.Is(err, ErrLinkRevoked) {
		t.Errorf("reloaded revoked link: %v", err)
	}
	if l, err := re.Lookup(b.Slug); err != nil || !l.E2EE || l.ViewOnly || l.Room != "beta" {
		t.Errorf("reloaded link = %+v, %v", l, err)
	}
	if got := re.List("beta"); len(got) != 1 || got[0].Slug != b.Slug {
		t.Errorf("List(beta) = %+v", got)
	}

	// Links past retention are dropped on load.
	clk.Advance(defaultLinkRetention + 3*time.Hour)
	if n := len(newTestLinks(t, cfg).List("")); n != 0 {
		t.Errorf("%d links loaded past retention", n)
	}

	for name, content := range map[string]string{
		"garbage":  "not json",
		"version":  `{"version": 2, "links": []}`,
		"unknown":  `{"version": 1, "links": [], "extra": 1}`,
		"badslug":  `{"version": 1, "links": [{"slug": "x", "room": "r"}]}`,
		"nullroom": `{"version": 1, "links": [{"slug": "` + a.Slug + `", "room": ""}]}`,
	} {
		p := filepath.Join(t.TempDir(), name+".json")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := NewLinks(LinksConfig{Secrets: []string{linkTestSecret}, Path: p}); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: NewLinks err = %v, want an error naming the file", name, err)
		}
	}
}

func TestLinksSaveFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing-dir", "links.json")
	s := newTestLinks(t, LinksConfig{Path: path})
	if _, err := s.Create(LinkOptions{Room: "r", TTL: time.Hour}); err == nil {
		t.Fatal("Create succeeded though the file cannot be written")
	}
	if n := len(s.List("")); n != 0 {
		t.Errorf("a link that was not saved is kept (%d links)", n)
	}
}

func TestNewLinksConfig(t *testing.T) {
	for _, secrets := range [][]string{nil, {}, {""}, {linkTestSecret, ""}} {
		if _, err := NewLinks(LinksConfig{Secrets: secrets}); err == nil {
			t.Errorf("NewLinks with secrets %q succeeded", secrets)
		}
	}
}

func TestLinkRoomNames(t *testing.T) {
	s := newTestLinks(t, LinksConfig{})
	for _, room := range []string{"", "a\x00b", "a\nb", "\xff", strings.Repeat("r", maxLinkRoomLen+1)} {
		if _, err := s.Create(LinkOptions{Room: room, TTL: time.Hour}); err == nil {
			t.Errorf("Create(room %q) succeeded", room)
		}
	}
	for _, room := range []string{"standup", "Équipe 🚀", "!abc:example.org", strings.Repeat("r", maxLinkRoomLen)} {
		if _, err := s.Create(LinkOptions{Room: room, TTL: time.Hour}); err != nil {
			t.Errorf("Create(room %q): %v", room, err)
		}
	}
}

func TestLinksConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "links.json")
	cfg := LinksConfig{Secrets: []string{linkTestSecret}, Path: path}
	s := newTestLinks(t, cfg)
	const workers, perWorker = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Go(func() {
			room := fmt.Sprintf("room-%d", w%3)
			for i := range perWorker {
				l, err := s.Create(LinkOptions{Room: room, TTL: time.Hour})
				if err != nil {
					errs <- err
					return
				}
				if _, err := s.Lookup(l.Slug); err != nil {
					errs <- err
				}
				if i%2 == 1 {
					if _, err := s.Revoke(l.Slug); err != nil {
						errs <- err
					}
				}
				s.List(room)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	all := s.List("")
	if len(all) != workers*perWorker {
		t.Fatalf("%d links, want %d", len(all), workers*perWorker)
	}
	re := newTestLinks(t, cfg).List("")
	if fmt.Sprint(re) != fmt.Sprint(all) {
		t.Errorf("the file does not hold the final state: %d links reloaded", len(re))
	}
	revoked := 0
	for _, l := range re {
		if l.Revoked {
			revoked++
		}
	}
	if revoked != workers*perWorker/2 {
		t.Errorf("%d revoked links reloaded, want %d", revoked, workers*perWorker/2)
	}
}
