package auth

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// lkEnv lists the lk-jwt-service environment variables ConfigFromLKEnv
// understands (MATRIXRTC.md §3.11). The others (LIVEKIT_JWT_BIND,
// LIVEKIT_JWT_PORT, LIVEKIT_INSECURE_SKIP_VERIFY_TLS, LIVEKIT_LOG_LEVEL,
// LIVEKIT_CS_API_URL_OVERRIDES, LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS,
// LIVEKIT_REDIS_URL) have no counterpart in Config.
func lkEnv() []string {
	return []string{
		"LIVEKIT_URL",
		"LIVEKIT_KEY", "LIVEKIT_SECRET",
		"LIVEKIT_KEY_FROM_FILE", "LIVEKIT_SECRET_FROM_FILE", "LIVEKIT_KEY_FILE",
		"LIVEKIT_FULL_ACCESS_HOMESERVERS", "LIVEKIT_LOCAL_HOMESERVERS",
	}
}

// ConfigFromLKEnv reads lk-jwt-service's environment variables through
// getenv (os.Getenv in production), as lk-jwt-service v0.5 reads them, so
// that Stoa can replace it in an existing deployment:
//
//   - LIVEKIT_URL becomes PublicURL.
//   - The API key and secret come from LIVEKIT_KEY_FILE ("key:secret"),
//     else from LIVEKIT_KEY_FROM_FILE and LIVEKIT_SECRET_FROM_FILE, else
//     from LIVEKIT_KEY and LIVEKIT_SECRET; spaces and line ends around them
//     are trimmed.
//   - LIVEKIT_FULL_ACCESS_HOMESERVERS (comma- or space-separated server
//     names, or "*"), or its deprecated alias LIVEKIT_LOCAL_HOMESERVERS,
//     becomes FullAccessHomeservers.
//
// With any of them set, UnseenRooms is UnseenLKJWT, so that the service
// behaves as lk-jwt-service did until a bot or application service is
// configured, and LIVEKIT_URL, the key, the secret and the full-access
// list are required, as lk-jwt-service requires them. With none set it
// returns the zero Config. Files are read with os.ReadFile.
func ConfigFromLKEnv(getenv func(string) string) (Config, error) {
	set := false
	for _, name := range lkEnv() {
		if getenv(name) != "" {
			set = true
			break
		}
	}
	if !set {
		return Config{}, nil
	}
	key, secret, err := lkKeySecret(getenv)
	if err != nil {
		return Config{}, err
	}
	url := getenv("LIVEKIT_URL")
	if key == "" || secret == "" || url == "" {
		return Config{}, errors.New("auth: LIVEKIT_KEY* / LIVEKIT_SECRET* and LIVEKIT_URL must be set")
	}
	full := getenv("LIVEKIT_FULL_ACCESS_HOMESERVERS")
	if full == "" {
		full = getenv("LIVEKIT_LOCAL_HOMESERVERS")
	}
	servers := strings.Fields(strings.ReplaceAll(full, ",", " "))
	if len(servers) == 0 {
		return Config{}, errors.New("auth: LIVEKIT_FULL_ACCESS_HOMESERVERS must be set to the homeservers whose users may start calls, or \"*\"")
	}
	return Config{
		PublicURL:             url,
		APIKey:                key,
		APISecret:             secret,
		UnseenRooms:           UnseenLKJWT,
		FullAccessHomeservers: servers,
	}, nil
}

// lkKeySecret reads the API key and secret as lk-jwt-service's
// readKeySecret does.
func lkKeySecret(getenv func(string) string) (key, secret string, err error) {
	if path := getenv("LIVEKIT_KEY_FILE"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", "", fmt.Errorf("auth: LIVEKIT_KEY_FILE: %w", err)
		}
		parts := strings.Split(string(b), ":")
		if len(parts) != 2 {
			return "", "", fmt.Errorf("auth: LIVEKIT_KEY_FILE %s: want key:secret", path)
		}
		return trimKey(parts[0]), trimKey(parts[1]), nil
	}
	key, secret = getenv("LIVEKIT_KEY"), getenv("LIVEKIT_SECRET")
	if path := getenv("LIVEKIT_KEY_FROM_FILE"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", "", fmt.Errorf("auth: LIVEKIT_KEY_FROM_FILE: %w", err)
		}
		key = string(b)
	}
	if path := getenv("LIVEKIT_SECRET_FROM_FILE"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", "", fmt.Errorf("auth: LIVEKIT_SECRET_FROM_FILE: %w", err)
		}
		secret = string(b)
	}
	return trimKey(key), trimKey(secret), nil
}

// trimKey trims what lk-jwt-service trims: spaces, CRs and LFs.
func trimKey(s string) string { return strings.Trim(s, " \r\n") }
