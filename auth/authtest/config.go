package authtest

import (
	"crypto/rand"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"

	"gopkg.in/yaml.v3"
)

// writeConfig writes dendrite.yaml (and, with opts.AppService, the
// registration appservice.yaml) into hs.Dir for hs.ServerName and returns
// the config's path. The keys are those of Dendrite v0.13.8's
// dendrite-sample.yaml.
func (hs *Homeserver) writeConfig(keyPath string, opts Options) (string, error) {
	asFiles := []string{}
	if opts.AppService != nil {
		as := *opts.AppService
		if as.URL == "" {
			return "", fmt.Errorf("Options.AppService.URL is empty; Dendrite needs somewhere to push transactions")
		}
		if as.ID == "" {
			as.ID = "stoa"
		}
		if as.ASToken == "" {
			as.ASToken = rand.Text()
		}
		if as.HSToken == "" {
			as.HSToken = rand.Text()
		}
		if as.SenderLocalpart == "" {
			as.SenderLocalpart = "stoa-auth"
		}
		if as.UserRegex == "" {
			as.UserRegex = "^@.*:" + regexp.QuoteMeta(hs.ServerName) + "$"
		}
		reg := map[string]any{
			"id":               as.ID,
			"url":              as.URL,
			"as_token":         as.ASToken,
			"hs_token":         as.HSToken,
			"sender_localpart": as.SenderLocalpart,
			"rate_limited":     false,
			"namespaces": map[string]any{
				"users":   []any{map[string]any{"exclusive": false, "regex": as.UserRegex}},
				"rooms":   []any{},
				"aliases": []any{},
			},
		}
		hs.RegistrationPath = filepath.Join(hs.Dir, "appservice.yaml")
		if err := writeYAML(hs.RegistrationPath, reg); err != nil {
			return "", err
		}
		hs.AppService = &as
		asFiles = append(asFiles, hs.RegistrationPath)
	}

	db := func(component string) map[string]any {
		// Dendrite parses the connection string as a URL, so the path is
		// escaped: t.TempDir() of a subtest can contain a '#'.
		u := url.URL{Scheme: "file", Path: filepath.Join(hs.Dir, component+".db")}
		return map[string]any{"connection_string": u.String()}
	}
	userAPI := map[string]any{
		"bcrypt_cost":      4, // the minimum: registration and login stay fast
		"account_database": db("userapi"),
	}
	if opts.OpenIDTokenLifetime > 0 {
		userAPI["openid_token_lifetime_ms"] = opts.OpenIDTokenLifetime.Milliseconds()
	}
	conf := map[string]any{
		"version": 2,
		"global": map[string]any{
			"server_name":         hs.ServerName,
			"private_key":         keyPath,
			"key_validity_period": "168h0m0s",
			// /.well-known/matrix/client answers with m.homeserver.
			"well_known_client_name": hs.URL,
			// true would unmount /_matrix/federation/*, and with it
			// openid/userinfo, which is how OpenID tokens are verified.
			"disable_federation":             false,
			"trusted_third_party_id_servers": []any{},
			"presence":                       map[string]any{"enable_inbound": false, "enable_outbound": false},
			"jetstream": map[string]any{
				"in_memory":    true,
				"storage_path": filepath.Join(hs.Dir, "jetstream"),
				"topic_prefix": "Dendrite",
			},
			"metrics":        map[string]any{"enabled": false},
			"dns_cache":      map[string]any{"enabled": false},
			"server_notices": map[string]any{"enabled": false, "local_part": "_server", "display_name": "Server Alert", "room_name": "Server Alert"},
			"report_stats":   map[string]any{"enabled": false},
			"cache":          map[string]any{"max_size_estimated": "64mb", "max_age": "1h"},
		},
		"app_service_api": map[string]any{
			"disable_tls_validation": true,
			"legacy_auth":            false, // hs_token in the Authorization header
			"legacy_paths":           false, // /_matrix/app/v1/...
			"config_files":           asFiles,
		},
		"client_api": map[string]any{
			"registration_disabled":       true,
			"registration_shared_secret":  hs.sharedSecret,
			"guests_disabled":             true,
			"enable_registration_captcha": false,
			"rate_limiting":               map[string]any{"enabled": false, "threshold": 5, "cooloff_ms": 500},
		},
		"federation_api": map[string]any{
			"database":         db("federationapi"),
			"key_perspectives": []any{},
			"send_max_retries": 1,
		},
		"key_server": map[string]any{"database": db("keyserver")},
		"media_api": map[string]any{
			"database":            db("mediaapi"),
			"base_path":           filepath.Join(hs.Dir, "media"),
			"max_file_size_bytes": 10 << 20,
		},
		"room_server": map[string]any{
			"default_room_version": "10",
			"database":             db("roomserver"),
		},
		"sync_api": map[string]any{
			"database": db("syncapi"),
			"search":   map[string]any{"enabled": false},
		},
		"user_api":  userAPI,
		"relay_api": map[string]any{"database": db("relayapi")},
		"mscs":      map[string]any{"mscs": []any{}, "database": db("mscs")},
		"logging":   []any{map[string]any{"type": "std", "level": "info"}},
	}
	path := filepath.Join(hs.Dir, "dendrite.yaml")
	return path, writeYAML(path, conf)
}

func writeYAML(path string, v any) error {
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}
