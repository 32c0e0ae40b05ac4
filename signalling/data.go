package signalling

import (
	"github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
	"google.golang.org/protobuf/proto"
)

// Data channel labels LiveKit clients use (PROTOCOL.md §5.6).
const (
	labelReliable = "_reliable"
	labelLossy    = "_lossy"
	// maxDataPacket is the largest DataPacket forwarded: the JS SDK caps
	// packets at 64 000 bytes, LiveKit's protobuf framing adds a little.
	maxDataPacket = 65536 + 1024
	// maxDataBuffered is how much data may wait for one receiver's channel:
	// a couple of seconds of a busy chat or RPC stream.
	maxDataBuffered = 1 << 20
)

// onDataChannel adopts a data channel the client opened. In single-PC mode
// the client's channels carry data both ways.
func (p *participant) onDataChannel(dc *webrtc.DataChannel) {
	var kind livekit.DataPacket_Kind
	switch dc.Label() {
	case labelReliable:
		kind = livekit.DataPacket_RELIABLE
	case labelLossy:
		kind = livekit.DataPacket_LOSSY
	default:
		// _data_track and anything else: accepted and ignored.
		return
	}
	if p.single {
		p.mu.Lock()
		p.dataOut[kind] = dc
		p.mu.Unlock()
	}
	dc.OnMessage(func(m webrtc.DataChannelMessage) { p.onData(kind, m.Data) })
}

// onData forwards a DataPacket from p to the room, with the sender fields
// overwritten so nobody can speak for someone else.
func (p *participant) onData(kind livekit.DataPacket_Kind, data []byte) {
	perm := p.permission()
	if perm == nil || !perm.CanPublishData || len(data) > maxDataPacket {
		return
	}
	pkt := &livekit.DataPacket{}
	if err := proto.Unmarshal(data, pkt); err != nil {
		return
	}
	if _, ok := pkt.Value.(*livekit.DataPacket_Metrics); ok {
		return
	}
	if kind == livekit.DataPacket_RELIABLE && pkt.Sequence > 0 {
		// Duplicates arrive after a resume, when the client re-sends what it
		// buffered; drop what was seen.
		p.mu.Lock()
		dup := pkt.Sequence <= p.lastDataSeq
		if !dup {
			p.lastDataSeq = pkt.Sequence
		}
		p.mu.Unlock()
		if dup {
			return
		}
	}
	identity := p.identity
	if p.hidden() {
		identity = ""
	}
	pkt.Kind = kind
	pkt.ParticipantSid = p.sid
	pkt.ParticipantIdentity = identity
	dest := pkt.DestinationIdentities
	if u, ok := pkt.Value.(*livekit.DataPacket_User); ok && u.User != nil {
		u.User.ParticipantSid = p.sid
		u.User.ParticipantIdentity = identity
		if len(dest) == 0 {
			dest = u.User.DestinationIdentities
		}
		u.User.DestinationIdentities = dest
		u.User.DestinationSids = nil
	}
	pkt.DestinationIdentities = dest
	out, err := proto.Marshal(pkt)
	if err != nil {
		return
	}
	for _, q := range p.room.others(p) {
		if len(dest) > 0 && !containsString(dest, q.identity) {
			continue
		}
		q.sendData(kind, out)
	}
}

func (p *participant) sendData(kind livekit.DataPacket_Kind, b []byte) {
	p.mu.Lock()
	dc := p.dataOut[kind]
	p.mu.Unlock()
	if dc == nil || dc.ReadyState() != webrtc.DataChannelStateOpen {
		return
	}
	// pion queues without bound; a receiver that does not keep up loses
	// packets rather than growing the server's memory.
	if dc.BufferedAmount() > maxDataBuffered {
		p.dataDropped.Add(1)
		return
	}
	if err := dc.Send(b); err != nil {
		p.log.Debug("data send failed", "err", err)
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
