// Package auth is Stoa's MatrixRTC authorisation service: a drop-in for
// Element's lk-jwt-service that ties calls to Matrix room state.
//
// A client's OpenID token is verified against its homeserver, the room's
// state (seen through a bot account or an application service) decides
// whether the user may join, and an access token for the SFU is minted.
// Afterwards the service keeps watching: participants whose room or call
// membership ends are removed from the SFU room.
//
// It knows nothing of RTP or pion: it talks to the media server through the
// SFU interface, which signalling implements.
package auth
