package signalling

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/twitchtv/twirp"
)

// maxRoomServiceRequest caps a RoomService request body. The largest
// legitimate ones carry metadata of maxMetadataSize, which JSON may escape
// to six times its size.
const maxRoomServiceRequest = 4 << 20

// roomService implements LiveKit's RoomService (PROTOCOL.md §6.1), the
// Twirp API that LiveKit's server SDKs and lk-jwt-service call. Its methods
// run on net/http goroutines, any number at once.
//
// Every method but the unimplemented ones checks the caller's grant first,
// as LiveKit does: roomCreate for CreateRoom and DeleteRoom, roomList for
// ListRooms, and roomAdmin for the room named in the request for the
// others. Errors are twirp.Errors from errors.go; anything else becomes
// errAPIInternal before it leaves.
type roomService struct {
	s   *Server
	log *slog.Logger
}

// claimsKey is the context key of the verified claims of a request's
// bearer token.
type claimsKey struct{}

// newRoomService returns the handler to mount at
// livekit.RoomServicePathPrefix.
//
// It authenticates the request like LiveKit's API middleware
// (pkg/service/auth.go): the token comes from "Authorization: Bearer" or
// the access_token query parameter. A request without a token, or with one
// that does not verify, is refused with unauthenticated before its body is
// read; LiveKit lets a request without a token reach the method, whose
// grant check fails with the same code.
func newRoomService(s *Server) http.Handler {
	rs := &roomService{s: s, log: s.log.With("component", "roomservice")}
	ts := livekit.NewRoomServiceServer(rs,
		twirp.WithServerInterceptors(rs.hideInternalErrors),
		twirp.WithServerHooks(&twirp.ServerHooks{Error: rs.logError}),
	)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, err := requestToken(r.Header, r.URL.Query())
		var claims *auth.ClaimGrants
		switch {
		case err != nil:
		case token == "":
			err = errAPIPermission
		default:
			_, claims, _, err = verifyToken(token, s.cfg.Keys)
		}
		if err != nil {
			var he *httpError
			if errors.As(err, &he) {
				err = twirp.NewError(twirp.Unauthenticated, he.Msg)
			}
			_ = twirp.WriteError(w, err)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxRoomServiceRequest)
		ts.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, claims)))
	})
}

// hideInternalErrors is a Twirp interceptor that passes twirp.Errors on
// (unwrapped, so that Twirp sees their code) and replaces any other error
// with errAPIInternal, logging it.
func (rs *roomService) hideInternalErrors(next twirp.Method) twirp.Method {
	return func(ctx context.Context, req any) (any, error) {
		resp, err := next(ctx, req)
		if err == nil {
			return resp, nil
		}
		var te twirp.Error
		if errors.As(err, &te) {
			return nil, te
		}
		method, _ := twirp.MethodName(ctx)
		rs.log.Warn("request failed", "method", method, "err", err)
		return nil, errAPIInternal
	}
}

// logError is the Twirp error hook: every error answered, at Debug.
func (rs *roomService) logError(ctx context.Context, e twirp.Error) context.Context {
	method, _ := twirp.MethodName(ctx)
	rs.log.Debug("request refused", "method", method, "code", string(e.Code()), "msg", e.Msg())
	return ctx
}

// claims returns the verified claims of the request, or nil.
func claims(ctx context.Context) *auth.ClaimGrants {
	c, _ := ctx.Value(claimsKey{}).(*auth.ClaimGrants)
	return c
}

func requireCreate(ctx context.Context) error {
	if c := claims(ctx); c == nil || c.Video == nil || !c.Video.RoomCreate {
		return errAPIPermission
	}
	return nil
}

func requireList(ctx context.Context) error {
	if c := claims(ctx); c == nil || c.Video == nil || !c.Video.RoomList {
		return errAPIPermission
	}
	return nil
}

// requireAdmin checks for roomAdmin on exactly room.
func requireAdmin(ctx context.Context, room string) error {
	if c := claims(ctx); c == nil || c.Video == nil || !c.Video.RoomAdmin || c.Video.Room != room {
		return errAPIPermission
	}
	return nil
}

func invalidArgument(msg string) error { return twirp.NewError(twirp.InvalidArgument, msg) }

// checkMetadata applies the join's limits to metadata.
func checkMetadata(metadata string) error {
	if len(metadata) > maxMetadataSize {
		return invalidArgument(errMetadataLarge.Msg)
	}
	return nil
}

// openRoom returns the open room named name, or errAPIRoomNotFound.
func (rs *roomService) openRoom(name string) (*room, error) {
	r := rs.s.room(name, false)
	if r == nil || r.isClosed() {
		return nil, errAPIRoomNotFound
	}
	return r, nil
}

// participant returns identity in room, or a not_found error.
func (rs *roomService) participant(room, identity string) (*participant, error) {
	r, err := rs.openRoom(room)
	if err != nil {
		return nil, err
	}
	p := r.get(identity)
	if p == nil {
		return nil, errAPIParticipantNotFound
	}
	return p, nil
}

// CreateRoom opens a room with the settings asked for, or returns the open
// room of that name, with its sid and creation time, after applying the
// non-zero settings asked for (as LiveKit). Zero timeouts mean the server's
// defaults; max_participants 0 means no limit. Agents, egress, presets and
// playout delays are ignored.
func (rs *roomService) CreateRoom(ctx context.Context, req *livekit.CreateRoomRequest) (*livekit.Room, error) {
	if err := requireCreate(ctx); err != nil {
		return nil, err
	}
	if err := checkRoomName(req.Name); err != nil {
		var he *httpError
		if errors.As(err, &he) {
			return nil, invalidArgument(he.Msg)
		}
		return nil, err
	}
	if err := checkMetadata(req.Metadata); err != nil {
		return nil, err
	}
	settings := roomSettings{
		emptyTimeout:     rs.s.cfg.EmptyTimeout,
		departureTimeout: rs.s.cfg.DepartureTimeout,
		maxParticipants:  req.MaxParticipants,
		metadata:         req.Metadata,
	}
	if req.EmptyTimeout > 0 {
		settings.emptyTimeout = time.Duration(req.EmptyTimeout) * time.Second
	}
	if req.DepartureTimeout > 0 {
		settings.departureTimeout = time.Duration(req.DepartureTimeout) * time.Second
	}
	r, created := rs.s.openRoom(req.Name, settings)
	if r == nil {
		return nil, errAPIUnavailable
	}
	if !created {
		r.configure(req)
	}
	return r.info(), nil
}

// ListRooms lists the open rooms, sorted by name, or those of them named.
func (rs *roomService) ListRooms(ctx context.Context, req *livekit.ListRoomsRequest) (*livekit.ListRoomsResponse, error) {
	if err := requireList(ctx); err != nil {
		return nil, err
	}
	rooms := rs.s.openRooms()
	if len(req.Names) > 0 {
		rooms = slices.DeleteFunc(rooms, func(r *room) bool { return !slices.Contains(req.Names, r.name) })
	}
	slices.SortFunc(rooms, func(a, b *room) int { return cmp.Compare(a.name, b.name) })
	res := &livekit.ListRoomsResponse{Rooms: make([]*livekit.Room, 0, len(rooms))}
	for _, r := range rooms {
		res.Rooms = append(res.Rooms, r.info())
	}
	return res, nil
}

// DeleteRoom closes a room: everyone gets leave{ROOM_DELETED, DISCONNECT}.
func (rs *roomService) DeleteRoom(ctx context.Context, req *livekit.DeleteRoomRequest) (*livekit.DeleteRoomResponse, error) {
	if err := requireCreate(ctx); err != nil {
		return nil, err
	}
	r, err := rs.openRoom(req.Room)
	if err != nil {
		return nil, err
	}
	r.log.Info("deleting room")
	r.close(livekit.DisconnectReason_ROOM_DELETED)
	return &livekit.DeleteRoomResponse{}, nil
}

// ListParticipants lists everyone in a room, sorted by identity; an empty
// list if the room is not open (as LiveKit).
func (rs *roomService) ListParticipants(ctx context.Context, req *livekit.ListParticipantsRequest) (*livekit.ListParticipantsResponse, error) {
	if err := requireAdmin(ctx, req.Room); err != nil {
		return nil, err
	}
	res := &livekit.ListParticipantsResponse{}
	if r, err := rs.openRoom(req.Room); err == nil {
		res.Participants = r.participantInfos()
	}
	return res, nil
}

// GetParticipant returns a participant's info. lk-jwt-service takes
// not_found to mean the participant has gone.
func (rs *roomService) GetParticipant(ctx context.Context, req *livekit.RoomParticipantIdentity) (*livekit.ParticipantInfo, error) {
	if err := requireAdmin(ctx, req.Room); err != nil {
		return nil, err
	}
	p, err := rs.participant(req.Room, req.Identity)
	if err != nil {
		return nil, errAPIParticipantNotFound
	}
	return p.snapshot(), nil
}

// RemoveParticipant disconnects a participant with
// leave{PARTICIPANT_REMOVED, DISCONNECT}.
func (rs *roomService) RemoveParticipant(ctx context.Context, req *livekit.RoomParticipantIdentity) (*livekit.RemoveParticipantResponse, error) {
	if err := requireAdmin(ctx, req.Room); err != nil {
		return nil, err
	}
	p, err := rs.participant(req.Room, req.Identity)
	if err != nil {
		return nil, errAPIParticipantNotFound
	}
	p.log.Info("removing participant", "reason", "RoomService.RemoveParticipant")
	p.close(livekit.DisconnectReason_PARTICIPANT_REMOVED, livekit.LeaveRequest_DISCONNECT, false)
	return &livekit.RemoveParticipantResponse{}, nil
}

// MutePublishedTrack mutes a published (or announced) track: the publisher
// is told to mute it and everyone sees it muted. Unmuting is refused, as by
// LiveKit unless its room.enable_remote_unmute is set: it would turn on
// someone's microphone without their consent.
func (rs *roomService) MutePublishedTrack(ctx context.Context, req *livekit.MuteRoomTrackRequest) (*livekit.MuteRoomTrackResponse, error) {
	if err := requireAdmin(ctx, req.Room); err != nil {
		return nil, err
	}
	p, err := rs.participant(req.Room, req.Identity)
	if err != nil {
		return nil, err
	}
	if !req.Muted {
		return nil, errAPIRemoteUnmute
	}
	ti, ok := p.remoteMute(req.TrackSid, req.Muted)
	if !ok {
		return nil, errAPITrackNotFound
	}
	p.log.Info("track muted by the server", "track", req.TrackSid)
	return &livekit.MuteRoomTrackResponse{Track: ti}, nil
}

// UpdateParticipant changes a participant's name and metadata (when not
// empty), attributes (merged; an empty value deletes) and permission (when
// given), and returns its new info.
func (rs *roomService) UpdateParticipant(ctx context.Context, req *livekit.UpdateParticipantRequest) (*livekit.ParticipantInfo, error) {
	if len(req.Name) > maxNameSize {
		return nil, invalidArgument("name length exceeds limits")
	}
	if err := checkMetadata(req.Metadata); err != nil {
		return nil, err
	}
	if attributesSize(req.Attributes) > maxAttributesSize {
		return nil, invalidArgument(errAttributesLarge.Msg)
	}
	if err := requireAdmin(ctx, req.Room); err != nil {
		return nil, err
	}
	p, err := rs.participant(req.Room, req.Identity)
	if err != nil {
		return nil, errAPIParticipantNotFound
	}
	if req.Name != "" || req.Metadata != "" || len(req.Attributes) > 0 {
		p.updateMetadata(req.Name, req.Metadata, req.Attributes)
	}
	if req.Permission != nil {
		p.setPermission(req.Permission)
	}
	return p.snapshot(), nil
}

// UpdateSubscriptions (un)subscribes a participant as if it had sent the
// subscription request itself.
func (rs *roomService) UpdateSubscriptions(ctx context.Context, req *livekit.UpdateSubscriptionsRequest) (*livekit.UpdateSubscriptionsResponse, error) {
	if err := requireAdmin(ctx, req.Room); err != nil {
		return nil, err
	}
	p, err := rs.participant(req.Room, req.Identity)
	if err != nil {
		return nil, err
	}
	p.handleSubscription(&livekit.UpdateSubscription{
		TrackSids:         req.TrackSids,
		Subscribe:         req.Subscribe,
		ParticipantTracks: req.ParticipantTracks,
	})
	return &livekit.UpdateSubscriptionsResponse{}, nil
}

// SendData sends a user packet from the server (no sender, sequence 0) to
// everyone in the room or to the participants named.
func (rs *roomService) SendData(ctx context.Context, req *livekit.SendDataRequest) (*livekit.SendDataResponse, error) {
	if err := requireAdmin(ctx, req.Room); err != nil {
		return nil, err
	}
	// The nonce is absent or a 128-bit UUID (as LiveKit).
	if n := len(req.Nonce); n != 0 && n != 16 {
		return nil, invalidArgument(fmt.Sprintf("nonce should be 16-bytes or not present, got: %d bytes", n))
	}
	if req.Kind != livekit.DataPacket_RELIABLE && req.Kind != livekit.DataPacket_LOSSY {
		return nil, invalidArgument(fmt.Sprintf("unknown data packet kind %d", req.Kind))
	}
	r, err := rs.openRoom(req.Room)
	if err != nil {
		return nil, err
	}
	//lint:ignore SA1019 destination_sids is deprecated but still sent by older SDKs.
	sids := req.DestinationSids
	pkt := &livekit.DataPacket{
		Kind:                  req.Kind,
		DestinationIdentities: req.DestinationIdentities,
		Value: &livekit.DataPacket_User{User: &livekit.UserPacket{
			Payload:               req.Data,
			DestinationIdentities: req.DestinationIdentities,
			Topic:                 req.Topic,
			Nonce:                 req.Nonce,
		}},
	}
	if err := r.sendServerData(req.Kind, pkt, req.DestinationIdentities, sids); err != nil {
		if errors.Is(err, errDataTooLarge) {
			return nil, invalidArgument("data packet too large")
		}
		return nil, err
	}
	return &livekit.SendDataResponse{}, nil
}

// UpdateRoomMetadata replaces a room's metadata; everyone in it gets a
// room_update.
func (rs *roomService) UpdateRoomMetadata(ctx context.Context, req *livekit.UpdateRoomMetadataRequest) (*livekit.Room, error) {
	if err := checkMetadata(req.Metadata); err != nil {
		return nil, err
	}
	if err := requireAdmin(ctx, req.Room); err != nil {
		return nil, err
	}
	r, err := rs.openRoom(req.Room)
	if err != nil {
		return nil, err
	}
	return r.setMetadata(req.Metadata), nil
}

// ForwardParticipant is not implemented: Stoa is a single node.
func (rs *roomService) ForwardParticipant(context.Context, *livekit.ForwardParticipantRequest) (*livekit.ForwardParticipantResponse, error) {
	return nil, errAPIUnimplemented
}

// MoveParticipant is not implemented.
func (rs *roomService) MoveParticipant(context.Context, *livekit.MoveParticipantRequest) (*livekit.MoveParticipantResponse, error) {
	return nil, errAPIUnimplemented
}

// PerformRpc is not implemented.
func (rs *roomService) PerformRpc(context.Context, *livekit.PerformRpcRequest) (*livekit.PerformRpcResponse, error) {
	return nil, errAPIUnimplemented
}
