package signalling

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Limits on what a client may send when it joins. The identity, room, metadata
// and attribute limits are LiveKit's defaults (livekit pkg/config/config.go,
// LimitConfig); the join_request caps match its DecompressGzip, which stops at
// http.DefaultMaxHeaderBytes (pkg/service/utils.go).
const (
	maxJoinRequestParam = 1 << 20   // base64 text; a longer URL does not pass net/http's default MaxHeaderBytes anyway
	maxJoinRequestSize  = 1 << 20   // serialized JoinRequest, after gunzip
	maxIdentityLen      = 256       // bytes
	maxRoomNameLen      = 256       // bytes
	maxMetadataSize     = 512 << 10 // bytes
	maxAttributesSize   = 64 << 10  // keys plus values, in bytes
)

// joinParams is a join (or resume) request that passed every check LiveKit
// makes before the WebSocket upgrade. parseJoin returns a new value that the
// caller owns.
type joinParams struct {
	APIKey string // issuer of the token, a key of Config.Keys
	Token  string // the raw JWT; never log it (LogValue leaves it out)
	// Claims are the verified claims, with Metadata and Attributes already
	// replaced by what the request supplied. Refresh tokens are minted from
	// them, so when the participant's name, metadata, attributes or
	// permission change, update Claims too (LiveKit does), under the lock
	// that mintToken's caller also holds.
	Claims    *auth.ClaimGrants
	ExpiresAt time.Time // the token's exp; see refreshTTL

	Identity, Name, Metadata string
	Attributes               map[string]string // the token's, overridden by the request's non-empty values; a copy of Claims.Attributes
	Room                     string            // always the token's video.room, never from the URL

	// Permission is the video grant with LiveKit's defaults applied (PROTOCOL.md §2):
	// CanPublishSources nil means every source.
	Permission *livekit.ParticipantPermission
	Kind       livekit.ParticipantInfo_Kind

	SinglePC       bool // join_request was used: one PeerConnection (/rtc/v1, or /rtc with join_request)
	AutoSubscribe  bool
	AdaptiveStream bool
	DisableICELite bool // the client asks for full ICE (PROTOCOL.md §3.3)

	Reconnect       bool // a resume of ParticipantSID's session
	ReconnectReason livekit.ReconnectReason
	ParticipantSID  string // PA_…, set on resume; the client's claim, check it belongs to Identity

	ClientInfo *livekit.ClientInfo

	PublisherOffer   *livekit.SessionDescription // single PC only; nil unless the client offered with the join
	AddTrackRequests []*livekit.AddTrackRequest  // single PC only; Go SDK publish-with-join
}

// LogValue implements slog.LogValuer and leaves out the token.
func (p *joinParams) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("room", p.Room),
		slog.String("identity", p.Identity),
		slog.String("api_key", p.APIKey),
		slog.Bool("single_pc", p.SinglePC),
		slog.Bool("reconnect", p.Reconnect),
		slog.String("sid", p.ParticipantSID),
	)
}

// parseJoin authenticates and parses a request to /rtc (v1 false) or /rtc/v1
// (v1 true), or to their /validate twins, following LiveKit (PROTOCOL.md §1.2,
// §1.5, §2). keys maps API keys to secrets; it is only read.
//
// The token comes from an "Authorization: Bearer" header, else from the
// access_token query parameter. On /rtc, a join_request parameter makes the
// join single-PC exactly as on /rtc/v1; without one, the legacy parameters
// are read. Every error is an *httpError carrying LiveKit's status and text;
// the caller answers it with writeHTTPError and must not upgrade.
//
// parseJoin does not look at rooms: a missing room (404) or a full node (503)
// is for the caller to report, with errRoomNotFound or errNodeFull. It may be
// called from any goroutine as long as nobody writes to keys meanwhile.
func parseJoin(r *http.Request, keys map[string]string, v1 bool) (*joinParams, error) {
	q := r.URL.Query()
	token, err := requestToken(r.Header, q)
	if err != nil {
		return nil, err
	}
	if token == "" {
		return nil, errNoPermission
	}
	apiKey, claims, expiresAt, err := verifyToken(token, keys)
	if err != nil {
		return nil, err
	}
	if claims.Video == nil {
		return nil, errNoPermission
	}

	p := &joinParams{
		APIKey:    apiKey,
		Token:     token,
		Claims:    claims,
		ExpiresAt: expiresAt,
	}
	var metadata string
	var attrs map[string]string
	if raw := q.Get("join_request"); raw != "" {
		jr, err := decodeJoinRequest(raw)
		if err != nil {
			return nil, err
		}
		p.setJoinRequest(jr, r)
		metadata, attrs = jr.GetMetadata(), jr.GetParticipantAttributes()
	} else {
		if v1 {
			return nil, errJoinRequestMissing
		}
		if attrs, err = decodeAttributes(q.Get("attributes")); err != nil {
			return nil, err
		}
		p.setQuery(q, r)
	}

	// LiveKit's order: the grant, identity and room checks come after the
	// join_request is decoded (pkg/service/utils.go ValidateConnectRequest).
	video := claims.Video
	if !video.RoomJoin {
		return nil, errPermissionDenied
	}
	if claims.Identity == "" {
		return nil, errIdentityEmpty
	}
	if len(claims.Identity) > maxIdentityLen {
		return nil, badRequest(fmt.Sprintf("participant identity length exceeds limits: max length %d", maxIdentityLen))
	}
	if video.Room == "" {
		return nil, errNoRoomName
	}
	if len(video.Room) > maxRoomNameLen {
		return nil, badRequest(fmt.Sprintf("room name length exceeds limits: max length %d", maxRoomNameLen))
	}
	if metadata != "" {
		if !video.GetCanUpdateOwnMetadata() {
			return nil, errNoPermission
		}
		claims.Metadata = metadata
	}
	if len(attrs) != 0 {
		if !video.GetCanUpdateOwnMetadata() {
			return nil, errNoPermission
		}
		if claims.Attributes == nil {
			claims.Attributes = make(map[string]string, len(attrs))
		}
		for k, v := range attrs {
			if v != "" { // as LiveKit: a join cannot delete the token's attributes
				claims.Attributes[k] = v
			}
		}
	}
	if len(claims.Metadata) > maxMetadataSize {
		return nil, errMetadataLarge
	}
	if attributesSize(claims.Attributes) > maxAttributesSize {
		return nil, errAttributesLarge
	}

	p.Identity = claims.Identity
	p.Name = claims.Name
	p.Metadata = claims.Metadata
	p.Attributes = maps.Clone(claims.Attributes)
	p.Room = video.Room
	p.Permission = video.ToPermission()
	p.Kind = claims.GetParticipantKind()
	return p, nil
}

// requestToken returns the bearer token of the Authorization header or, when
// there is none, the access_token query parameter; "" if neither is set.
func requestToken(h http.Header, q url.Values) (string, error) {
	const bearer = "Bearer " // case-sensitive, as LiveKit
	if h := h.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, bearer)
		if !ok {
			return "", errMissingBearer
		}
		return tok, nil
	}
	return q.Get("access_token"), nil
}

// setJoinRequest fills p from a decoded join_request (single PC).
func (p *joinParams) setJoinRequest(jr *livekit.JoinRequest, r *http.Request) {
	cs := jr.GetConnectionSettings()
	p.SinglePC = true
	// No default here: both SDKs always send connection_settings.
	p.AutoSubscribe = cs.GetAutoSubscribe()
	p.AdaptiveStream = cs.GetAdaptiveStream()
	p.DisableICELite = cs.GetDisableIceLite()
	p.Reconnect = jr.GetReconnect()
	p.ReconnectReason = jr.GetReconnectReason()
	p.ParticipantSID = jr.GetParticipantSid()
	p.PublisherOffer = jr.GetPublisherOffer()
	p.AddTrackRequests = jr.GetAddTrackRequests()
	p.ClientInfo = jr.GetClientInfo()
	if p.ClientInfo == nil {
		p.ClientInfo = &livekit.ClientInfo{}
	}
	augmentClientInfo(p.ClientInfo, r)
}

// setQuery fills p from the legacy query parameters of /rtc (PROTOCOL.md §1.2).
func (p *joinParams) setQuery(q url.Values, r *http.Request) {
	p.AutoSubscribe = true
	if s := q.Get("auto_subscribe"); s != "" {
		p.AutoSubscribe = queryBool(s)
	}
	p.AdaptiveStream = queryBool(q.Get("adaptive_stream"))
	p.DisableICELite = queryBool(q.Get("disable_ice_lite"))
	p.Reconnect = queryBool(q.Get("reconnect"))
	reason, _ := strconv.ParseInt(q.Get("reconnect_reason"), 10, 32) // 0, unknown, when absent or bad
	p.ReconnectReason = livekit.ReconnectReason(reason)
	if p.Reconnect {
		p.ParticipantSID = q.Get("sid")
	}
	p.ClientInfo = queryClientInfo(q)
	augmentClientInfo(p.ClientInfo, r)
}

func queryBool(s string) bool { return s == "1" || s == "true" }

// decodeAttributes decodes the Go SDK's attributes parameter, base64url of a
// JSON object of strings. An empty s gives nil.
func decodeAttributes(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	b, err := decodeBase64(s)
	if err != nil {
		return nil, errBadAttributes
	}
	var attrs map[string]string
	if err := json.Unmarshal(b, &attrs); err != nil {
		return nil, errBadAttributes
	}
	return attrs, nil
}

func attributesSize(attrs map[string]string) int {
	n := 0
	for k, v := range attrs {
		n += len(k) + len(v)
	}
	return n
}

// decodeJoinRequest decodes a join_request query value: base64 of a
// livekit.WrappedJoinRequest that holds a serialized livekit.JoinRequest,
// gzip-compressed or not (PROTOCOL.md §1.2). The decompressed size is capped
// and every field is held to the limits of validateSignalRequest. Errors are
// 400 *httpErrors.
func decodeJoinRequest(param string) (*livekit.JoinRequest, error) {
	if len(param) > maxJoinRequestParam {
		return nil, errJoinRequestLarge
	}
	raw, err := decodeBase64(param)
	if err != nil {
		return nil, badRequest("cannot base64 decode wrapped join request")
	}
	var wrapped livekit.WrappedJoinRequest
	if err := proto.Unmarshal(raw, &wrapped); err != nil {
		return nil, badRequest("cannot unmarshal wrapped join request")
	}
	b := wrapped.GetJoinRequest()
	switch c := wrapped.GetCompression(); c {
	case livekit.WrappedJoinRequest_NONE:
		if len(b) > maxJoinRequestSize {
			return nil, errJoinRequestLarge
		}
	case livekit.WrappedJoinRequest_GZIP:
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, badRequest("cannot read decompressed join request")
		}
		// One byte over the cap tells a large request from one that fits.
		b, err = io.ReadAll(io.LimitReader(zr, maxJoinRequestSize+1))
		if err != nil {
			return nil, badRequest("cannot read decompressed join request")
		}
		if len(b) > maxJoinRequestSize {
			return nil, errJoinRequestLarge
		}
	default:
		return nil, badRequest(fmt.Sprintf("unknown join request compression %d", c))
	}
	jr := &livekit.JoinRequest{}
	if err := proto.Unmarshal(b, jr); err != nil {
		return nil, badRequest("cannot unmarshal join request")
	}
	if err := checkLimits(jr.ProtoReflect()); err != nil {
		return nil, badRequest("join request " + err.Error())
	}
	return jr, nil
}

// decodeBase64 decodes URL-safe or standard base64, padded or not. The
// clients send URL-safe with padding; a '+' of the standard alphabet that was
// not percent-encoded arrives as ' ' after query decoding.
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case '+', ' ':
			return '-'
		case '/':
			return '_'
		}
		return r
	}, strings.TrimRight(s, "="))
	return base64.RawURLEncoding.DecodeString(s)
}

// queryClientInfo reads ClientInfo from the legacy query parameters, as
// LiveKit's ParseClientInfo (pkg/service/utils.go).
func queryClientInfo(q url.Values) *livekit.ClientInfo {
	ci := &livekit.ClientInfo{
		Sdk:            sdkFromParam(q.Get("sdk")),
		Version:        q.Get("version"),
		Os:             q.Get("os"),
		OsVersion:      q.Get("os_version"),
		Browser:        q.Get("browser"),
		BrowserVersion: q.Get("browser_version"),
		DeviceModel:    q.Get("device_model"),
		Network:        q.Get("network"),
	}
	if v, err := strconv.ParseInt(q.Get("protocol"), 10, 32); err == nil {
		ci.Protocol = int32(v)
	}
	if v, err := strconv.ParseInt(q.Get("client_protocol"), 10, 32); err == nil {
		ci.ClientProtocol = int32(v)
	}
	for name := range strings.SplitSeq(q.Get("capabilities"), ",") {
		if v, ok := livekit.ClientInfo_Capability_value[strings.TrimSpace(name)]; ok {
			ci.Capabilities = append(ci.Capabilities, livekit.ClientInfo_Capability(v))
		}
	}
	return ci
}

// sdkFromParam maps the sdk query parameter to ClientInfo.SDK.
func sdkFromParam(s string) livekit.ClientInfo_SDK {
	switch s {
	case "js":
		return livekit.ClientInfo_JS
	case "ios", "swift":
		return livekit.ClientInfo_SWIFT
	case "android":
		return livekit.ClientInfo_ANDROID
	case "flutter":
		return livekit.ClientInfo_FLUTTER
	case "go":
		return livekit.ClientInfo_GO
	case "unity":
		return livekit.ClientInfo_UNITY
	case "reactnative":
		return livekit.ClientInfo_REACT_NATIVE
	case "rust":
		return livekit.ClientInfo_RUST
	case "python":
		return livekit.ClientInfo_PYTHON
	case "cpp":
		return livekit.ClientInfo_CPP
	case "unityweb":
		return livekit.ClientInfo_UNITY_WEB
	case "node":
		return livekit.ClientInfo_NODE
	case "esp32":
		return livekit.ClientInfo_ESP32
	}
	return livekit.ClientInfo_UNKNOWN
}

// augmentClientInfo sets the client's address and, for SDKs that run in
// browsers, fills an empty browser and OS from the User-Agent, as LiveKit's
// AugmentClientInfo does (with a much rougher parser). The address honours
// forwarding headers, so it is informational: never base a decision on it.
func augmentClientInfo(ci *livekit.ClientInfo, r *http.Request) {
	ci.Address = clientAddress(r)
	if sdk := ci.GetSdk(); sdk != livekit.ClientInfo_JS && sdk != livekit.ClientInfo_REACT_NATIVE &&
		sdk != livekit.ClientInfo_FLUTTER && sdk != livekit.ClientInfo_UNITY && sdk != livekit.ClientInfo_UNKNOWN {
		return
	}
	ua := r.UserAgent()
	if ci.Browser == "" {
		ci.Browser, ci.BrowserVersion = browserFromUA(ua)
	}
	if ci.Os == "" {
		ci.Os, ci.OsVersion = osFromUA(ua)
	}
}

func clientAddress(r *http.Request) string {
	if ip := r.Header.Get("CF-Connecting-IP"); ip != "" {
		return ip
	}
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
		first, _, _ := strings.Cut(xff, ",")
		return strings.TrimSpace(first)
	}
	if ip := r.Header.Get("X-Real-IP"); ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// browserFromUA returns the browser family and version named by a
// User-Agent. Order matters: Edge and Opera also say Chrome, and Chrome also
// says Safari.
func browserFromUA(ua string) (name, version string) {
	for _, b := range [...]struct{ token, name string }{
		{"Edg/", "Edge"}, {"EdgA/", "Edge"}, {"EdgiOS/", "Edge"},
		{"OPR/", "Opera"},
		{"Firefox/", "Firefox"}, {"FxiOS/", "Firefox"},
		{"CriOS/", "Chrome"}, {"Chrome/", "Chrome"},
		{"Version/", "Safari"}, // Safari states its own version here
	} {
		if _, rest, ok := strings.Cut(ua, b.token); ok {
			return b.name, uaVersion(rest)
		}
	}
	return "", ""
}

// osFromUA returns the operating system and its version named by a
// User-Agent. iOS also says Mac OS X, and Android also says Linux.
func osFromUA(ua string) (name, version string) {
	for _, o := range [...]struct{ token, name string }{
		{"Windows NT ", "Windows"},
		{"iPhone OS ", "iOS"}, {"CPU OS ", "iOS"},
		{"Android ", "Android"},
		{"CrOS ", "Chrome OS"},
		{"Mac OS X ", "Mac OS X"},
		{"Linux", "Linux"},
	} {
		if _, rest, ok := strings.Cut(ua, o.token); ok {
			return o.name, uaVersion(rest)
		}
	}
	return "", ""
}

// uaVersion returns the version at the start of s, "17_4" written as "17.4".
func uaVersion(s string) string {
	const maxLen = 32
	end := 0
	for end < len(s) && end < maxLen && (s[end] >= '0' && s[end] <= '9' || s[end] == '.' || s[end] == '_') {
		end++
	}
	return strings.ReplaceAll(strings.TrimRight(s[:end], "._"), "_", ".")
}

// Limits on the fields of client messages, enforced by checkLimits. They bound
// the work one message can cause; the WebSocket read limit bounds its memory
// (LiveKit reads at most 2 MiB, LimitConfig.SignalMessageSizeLimit). Each is
// far above what the stock clients send.
const (
	maxSDPSize       = 256 << 10 // an offer with 3 simulcast tracks and E2EE is under 16 KiB
	maxCandidateSize = 4 << 10   // one RTCIceCandidateInit as JSON, about 200 bytes
	maxStringSize    = 4 << 10   // any other string or bytes field: sids, cids, names, mime types, rids
	maxEntries       = 1000      // any list or map, e.g. the track sids of one subscription
	maxMapSize       = 64 << 10  // keys plus values of any map: attributes (LiveKit MaxAttributesSize), mid_to_track_id
	maxLayers        = 16        // video layers of one track: simulcast sends 3, SVC up to L3T3's 3
	maxCodecs        = 8         // simulcast codecs of one track: primary plus backup
	maxNameSize      = 256       // participant name (LiveKit MaxParticipantNameLength)
	maxBlobSize      = 64000     // data blob contents (LiveKit MaxDataBlobSize)
	maxBlobKeySize   = 256       // data blob key (LiveKit MaxDataBlobKeyLength)
	maxEncodingSize  = 32        // custom data track encoding (LiveKit MaxDataTrackCustomEncodingLength)
	maxNesting       = 16        // messages within messages; SignalRequest's schema needs 6
)

// validateSignalRequest reports whether req stays within the limits above,
// field by field across every message kind, including kinds the server
// ignores. A nil request or one without a message (a kind newer than ours) is
// valid. The error is a *limitError that names the field, e.g. "offer.sdp";
// errors.Is(err, errTooLarge) holds. An update_metadata over its limits should
// be answered with request_response LIMIT_EXCEEDED, as LiveKit does; anything
// else over a limit is a broken or hostile client.
func validateSignalRequest(req *livekit.SignalRequest) error {
	if req == nil {
		return nil
	}
	return checkLimits(req.ProtoReflect())
}

// fieldLimit bounds one protobuf field.
type fieldLimit struct {
	size  int // bytes of each string or bytes value; for a map, of all its keys and values together
	count int // entries of a list or map
}

// limitOf returns the limit of a field: its own, or the default for its kind.
func limitOf(fd protoreflect.FieldDescriptor) fieldLimit {
	l := fieldLimit{size: maxStringSize, count: maxEntries}
	if fd.IsMap() {
		l.size = maxMapSize
	}
	switch fd.FullName() {
	case "livekit.SessionDescription.sdp":
		l.size = maxSDPSize
	case "livekit.TrickleRequest.candidateInit":
		l.size = maxCandidateSize
	case "livekit.UpdateParticipantMetadata.metadata", "livekit.JoinRequest.metadata":
		l.size = maxMetadataSize
	case "livekit.UpdateParticipantMetadata.name":
		l.size = maxNameSize
	case "livekit.DataBlob.contents":
		l.size = maxBlobSize
	case "livekit.DataBlobKey.generic":
		l.size = maxBlobKeySize
	case "livekit.DataTrackFrameEncoding.custom":
		l.size = maxEncodingSize
	case "livekit.AddTrackRequest.layers", "livekit.SimulcastCodec.layers",
		"livekit.UpdateVideoLayers.layers", "livekit.TrackInfo.layers",
		"livekit.SimulcastCodecInfo.layers":
		l.count = maxLayers
	case "livekit.AddTrackRequest.simulcast_codecs", "livekit.TrackInfo.codecs":
		l.count = maxCodecs
	}
	return l
}

// checkLimits checks every set field of m, recursively, against limitOf.
func checkLimits(m protoreflect.Message) error { return checkMessage(m, 0) }

func checkMessage(m protoreflect.Message, depth int) error {
	if depth > maxNesting {
		return &limitError{Size: depth, Limit: maxNesting, Count: true}
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		err = checkField(fd, v, depth)
		return err == nil
	})
	return err
}

func checkField(fd protoreflect.FieldDescriptor, v protoreflect.Value, depth int) error {
	l := limitOf(fd)
	name := string(fd.Name())
	switch {
	case fd.IsMap():
		mp := v.Map()
		if mp.Len() > l.count {
			return &limitError{Field: name, Size: mp.Len(), Limit: l.count, Count: true}
		}
		size := 0
		var err error
		mp.Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
			size += valueSize(fd.MapKey(), k.Value()) + valueSize(fd.MapValue(), mv)
			if fd.MapValue().Message() != nil {
				err = checkMessage(mv.Message(), depth+1)
			}
			return err == nil
		})
		if err != nil {
			return within(name, err)
		}
		if size > l.size {
			return &limitError{Field: name, Size: size, Limit: l.size}
		}
	case fd.IsList():
		list := v.List()
		if list.Len() > l.count {
			return &limitError{Field: name, Size: list.Len(), Limit: l.count, Count: true}
		}
		for i := range list.Len() {
			if err := checkValue(fd, list.Get(i), l, depth); err != nil {
				return within(name+"["+strconv.Itoa(i)+"]", err)
			}
		}
	default:
		if err := checkValue(fd, v, l, depth); err != nil {
			return within(name, err)
		}
	}
	return nil
}

// checkValue checks one value of fd: a singular field or one list element.
func checkValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, l fieldLimit, depth int) error {
	if fd.Message() != nil {
		return checkMessage(v.Message(), depth+1)
	}
	if n := valueSize(fd, v); n > l.size {
		return &limitError{Size: n, Limit: l.size}
	}
	return nil
}

// valueSize returns the length of a string or bytes value, else 0.
func valueSize(fd protoreflect.FieldDescriptor, v protoreflect.Value) int {
	k := fd.Kind()
	if k == protoreflect.StringKind {
		return len(v.String())
	}
	if k == protoreflect.BytesKind {
		return len(v.Bytes())
	}
	return 0
}

// within prefixes the field path of a limitError from a nested value.
func within(prefix string, err error) error {
	var le *limitError
	if errors.As(err, &le) {
		if le.Field == "" {
			le.Field = prefix
		} else {
			le.Field = prefix + "." + le.Field
		}
	}
	return err
}
