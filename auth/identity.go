package auth

import (
	"crypto/sha256"
	"encoding/base64"
	"unicode/utf8"

	"maunium.net/go/mautrix/id"
)

// roomSlot is the MatrixRTC slot of a room's one call. Element Call always
// asks /get_token for it, and /sfu/get implies it (MATRIXRTC.md §3.2, §3.8).
const roomSlot = "m.call#ROOM"

// The names below follow lk-jwt-service v0.4.3 and later (MATRIXRTC.md
// §3.8, MSC4195 appendix). Element Call matches SFU participants to
// MatrixRTC memberships by identity, so the identities must be exactly
// what it computes; the room alias only has to be the same on both
// endpoints, and is lk-jwt-service's so that the two can be swapped.

// legacyIdentity is the SFU identity of a /sfu/get token, "{user}:{device}",
// which Element Call compares with "${sender}:${device_id}" of a call
// membership state event.
func legacyIdentity(user id.UserID, device id.DeviceID) string {
	return string(user) + ":" + string(device)
}

// memberIdentity is the SFU identity of a /get_token token,
// H(J([user, device, memberID])): js-sdk's computeRtcIdentityRaw.
func memberIdentity(user id.UserID, device id.DeviceID, memberID string) string {
	return hashStrings(string(user), string(device), memberID)
}

// roomAlias is the SFU room name of a MatrixRTC slot, H(J([room, slot])).
// /sfu/get uses it with roomSlot, so both endpoints name a room's call
// alike.
func roomAlias(room id.RoomID, slot string) string {
	return hashStrings(string(room), slot)
}

// hashStrings is H(J(parts)): standard base64 without padding of the
// SHA-256 of the JSON array of parts, serialised as JavaScript's
// JSON.stringify does.
func hashStrings(parts ...string) string {
	sum := sha256.Sum256(jsonStringArray(parts))
	return base64.RawStdEncoding.EncodeToString(sum[:])
}

// jsonStringArray serialises ss as JSON.stringify does: no whitespace, and
// only '"', '\\' and control characters escaped (lower-case hex), so not
// '<', '>', '&', U+2028 or U+2029, which encoding/json escapes. Invalid
// UTF-8 becomes U+FFFD, as encoding/json decodes it; a JavaScript string
// has none.
func jsonStringArray(ss []string) []byte {
	const hex = "0123456789abcdef"
	b := make([]byte, 0, 64)
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		for len(s) > 0 {
			r, size := utf8.DecodeRuneInString(s)
			s = s[size:]
			switch {
			case r == '"' || r == '\\':
				b = append(b, '\\', byte(r))
			case r == '\b':
				b = append(b, '\\', 'b')
			case r == '\f':
				b = append(b, '\\', 'f')
			case r == '\n':
				b = append(b, '\\', 'n')
			case r == '\r':
				b = append(b, '\\', 'r')
			case r == '\t':
				b = append(b, '\\', 't')
			case r < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[r>>4], hex[r&0xF])
			default:
				b = utf8.AppendRune(b, r)
			}
		}
		b = append(b, '"')
	}
	return append(b, ']')
}
