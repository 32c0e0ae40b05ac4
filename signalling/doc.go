// Package signalling speaks LiveKit's client protocol, so livekit-client,
// LiveKit's Go SDK and Element Call join Stoa unchanged, and LiveKit's
// RoomService server API.
//
// It is where the media plane (package sfu) and the rest meet: a WebSocket
// per client carries protobuf SignalRequests and SignalResponses (/rtc with
// two PeerConnections, /rtc/v1 with one); rooms and participants live here,
// translated into sfu Peers, UpTracks and DownTracks. See
// ../shared/PROTOCOL.md for what the clients expect, message by message.
package signalling
