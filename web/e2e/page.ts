// Test page for the browser harness (run.mjs): one livekit-client participant.
//
// It joins a room with the real SDK, publishes the fake camera (simulcast)
// and microphone, subscribes to everything, shows every remote video in a
// visible <video> (adaptiveStream pauses tracks nobody sees) and plays every
// remote audio track. The driver reads it through window.stoa.
//
// Configuration, first match wins:
//   1. window.__stoaConfig = {url, token, single, name, logLevel}, set by the
//      driver before the page's scripts run (page.addInitScript);
//   2. the query string or hash: ?url=ws://127.0.0.1:7880&token=...&single=0
//      (for running the page by hand).
// single (singlePeerConnection) defaults to true, the SDK's default, which
// joins on /rtc/v1; false joins on /rtc with two PeerConnections.

import { peerConnections, webSockets } from './spy'; // must stay the first import
import {
  ConnectionState,
  LogLevel,
  RemoteParticipant,
  RemoteTrack,
  Room,
  RoomEvent,
  Track,
  setLogLevel,
  version as sdkVersion,
} from 'livekit-client';

interface Config {
  url: string;
  token: string;
  single: boolean;
  name?: string;
  logLevel?: string;
}

/** One remote track as seen by this page. */
interface RemoteTrackStats {
  identity: string;
  participantSid: string;
  trackSid: string;
  source: string;
  kind: string;
  /** inbound-rtp framesDecoded (video), summed over PeerConnections. */
  framesDecoded: number;
  /** inbound-rtp totalSamplesReceived (audio), concealed samples included. */
  totalSamplesReceived: number;
  concealedSamples: number;
  packetsReceived: number;
  bytesReceived: number;
  frameWidth?: number;
  frameHeight?: number;
  /** How many inbound-rtp entries matched this track (0: no stats yet). */
  streams: number;
}

declare global {
  interface Window {
    __stoaConfig?: Partial<Config>;
    stoa: unknown;
  }
}

// Counted Room events. Reconnecting..Disconnected are what the resume check
// asserts on; the others help when reading a failure.
const countedEvents = [
  RoomEvent.Connected,
  RoomEvent.Reconnecting,
  RoomEvent.SignalReconnecting,
  RoomEvent.Reconnected,
  RoomEvent.Disconnected,
  RoomEvent.ParticipantConnected,
  RoomEvent.ParticipantDisconnected,
  RoomEvent.TrackSubscribed,
  RoomEvent.TrackUnsubscribed,
  RoomEvent.TrackSubscriptionFailed,
  RoomEvent.LocalTrackPublished,
  RoomEvent.MediaDevicesError,
  RoomEvent.ConnectionStateChanged,
] as const;

const maxLogEntries = 300;

function readConfig(): Config | undefined {
  const fromDriver = window.__stoaConfig ?? {};
  const params = new URLSearchParams(location.search);
  for (const [k, v] of new URLSearchParams(location.hash.replace(/^#/, ''))) {
    if (!params.has(k)) params.set(k, v);
  }
  const url = fromDriver.url ?? params.get('url') ?? undefined;
  const token = fromDriver.token ?? params.get('token') ?? undefined;
  if (!url || !token) return undefined;
  let single = true;
  if (typeof fromDriver.single === 'boolean') single = fromDriver.single;
  else if (params.has('single')) single = !/^(0|false|no)$/i.test(params.get('single') ?? '');
  return {
    url,
    token,
    single,
    name: fromDriver.name ?? params.get('name') ?? undefined,
    logLevel: fromDriver.logLevel ?? params.get('logLevel') ?? undefined,
  };
}

class Harness {
  readonly room: Room;
  readonly config: Config;
  readonly counts: Record<string, number> = {};
  readonly log: { t: number; event: string; detail?: string }[] = [];
  phase = 'created';
  error: string | undefined;
  private readonly started = performance.now();

  constructor(config: Config) {
    this.config = config;
    this.room = new Room({
      adaptiveStream: true,
      dynacast: true,
      singlePeerConnection: config.single,
    });
    for (const ev of countedEvents) {
      this.counts[ev] = 0;
      this.room.on(ev, (...args: unknown[]) => {
        this.counts[ev]++;
        this.note(ev, describe(args));
      });
    }
    this.room.on(RoomEvent.TrackSubscribed, (track: RemoteTrack, _pub, p: RemoteParticipant) =>
      this.show(track, p),
    );
    this.room.on(RoomEvent.TrackUnsubscribed, (track: RemoteTrack) => {
      for (const el of track.detach()) (el.closest('figure') ?? el).remove();
    });
  }

  note(event: string, detail?: string) {
    this.log.push({ t: Math.round(performance.now() - this.started), event, detail });
    if (this.log.length > maxLogEntries) this.log.splice(0, this.log.length - maxLogEntries);
    setStatus(`${this.config.name ?? ''} ${this.room.state}: ${event} ${detail ?? ''}`);
  }

  async run() {
    const { room, config } = this;
    try {
      this.phase = 'connecting';
      await room.connect(config.url, config.token, { autoSubscribe: true });
      this.note('connect resolved', `sid=${room.localParticipant.sid}`);
      this.phase = 'publishing';
      await room.localParticipant.setMicrophoneEnabled(true);
      await room.localParticipant.setCameraEnabled(true, undefined, { simulcast: true });
      // Remote audio plays through <audio> elements; the page is started
      // with autoplay allowed, this only covers a browser without that flag.
      await room.startAudio().catch(() => undefined);
      this.phase = 'running';
      this.note('published');
    } catch (e) {
      this.phase = 'failed';
      this.error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      this.note('failed', this.error);
    }
  }

  private show(track: RemoteTrack, p: RemoteParticipant) {
    const el = track.attach();
    if (track.kind === Track.Kind.Video) {
      // Visible and of a fixed size, so that adaptiveStream keeps the track
      // enabled and asks for a layer that fits 320x180.
      const fig = document.createElement('figure');
      const cap = document.createElement('figcaption');
      cap.textContent = `${p.identity} ${track.sid}`;
      el.style.width = '320px';
      el.style.height = '180px';
      (el as HTMLVideoElement).muted = true;
      fig.append(el, cap);
      document.getElementById('videos')?.append(fig);
    } else {
      document.getElementById('audios')?.append(el);
    }
  }

  state() {
    const { room } = this;
    return {
      name: this.config.name,
      single: this.config.single,
      sdkVersion,
      phase: this.phase,
      error: this.error,
      connectionState: room.state,
      connected: room.state === ConnectionState.Connected,
      roomName: room.name,
      localIdentity: room.localParticipant.identity,
      localSid: room.localParticipant.sid,
      localTracks: [...room.localParticipant.trackPublications.values()].map((pub) => ({
        trackSid: pub.trackSid,
        source: pub.source,
        kind: pub.kind,
        simulcasted: pub.simulcasted ?? false,
      })),
      remoteParticipants: [...room.remoteParticipants.values()].map((p) => ({
        identity: p.identity,
        sid: p.sid,
        tracks: [...p.trackPublications.values()].map((pub) => ({
          trackSid: pub.trackSid,
          source: pub.source,
          kind: pub.kind,
          subscribed: pub.isSubscribed,
          enabled: pub.isEnabled,
          muted: pub.isMuted,
        })),
      })),
      events: { ...this.counts },
      log: this.log.slice(-60),
      peerConnections: peerConnections.map((pc) => ({
        connectionState: pc.connectionState,
        iceConnectionState: pc.iceConnectionState,
        signalingState: pc.signalingState,
      })),
      webSockets: webSockets.map((ws) => ({ url: redact(ws.url), readyState: ws.readyState })),
    };
  }

  async stats() {
    const { room } = this;
    // trackIdentifier of inbound-rtp is the receiving MediaStreamTrack's id.
    const byTrackId = new Map<string, RemoteTrackStats>();
    const remote: RemoteTrackStats[] = [];
    for (const p of room.remoteParticipants.values()) {
      for (const pub of p.trackPublications.values()) {
        const entry: RemoteTrackStats = {
          identity: p.identity,
          participantSid: p.sid,
          trackSid: pub.trackSid,
          source: pub.source,
          kind: pub.kind,
          framesDecoded: 0,
          totalSamplesReceived: 0,
          concealedSamples: 0,
          packetsReceived: 0,
          bytesReceived: 0,
          streams: 0,
        };
        remote.push(entry);
        const mst = pub.track?.mediaStreamTrack;
        if (mst) byTrackId.set(mst.id, entry);
      }
    }
    const pcs = [];
    const unmatched = [];
    for (const [i, pc] of peerConnections.entries()) {
      const info: Record<string, unknown> = {
        index: i,
        connectionState: pc.connectionState,
        iceConnectionState: pc.iceConnectionState,
      };
      pcs.push(info);
      if (pc.connectionState === 'closed') continue;
      let report: RTCStatsReport;
      try {
        report = await pc.getStats();
      } catch (e) {
        info.error = String(e);
        continue;
      }
      const outbound = [];
      for (const s of report.values() as IterableIterator<Record<string, any>>) {
        if (s.type === 'inbound-rtp') {
          const entry = byTrackId.get(s.trackIdentifier);
          if (!entry) {
            unmatched.push({ pc: i, kind: s.kind, mid: s.mid, packetsReceived: s.packetsReceived });
            continue;
          }
          entry.streams++;
          entry.framesDecoded += s.framesDecoded ?? 0;
          entry.totalSamplesReceived += s.totalSamplesReceived ?? 0;
          entry.concealedSamples += s.concealedSamples ?? 0;
          entry.packetsReceived += s.packetsReceived ?? 0;
          entry.bytesReceived += s.bytesReceived ?? 0;
          if (s.frameWidth) entry.frameWidth = s.frameWidth;
          if (s.frameHeight) entry.frameHeight = s.frameHeight;
        } else if (s.type === 'outbound-rtp') {
          outbound.push({
            kind: s.kind,
            rid: s.rid,
            active: s.active,
            packetsSent: s.packetsSent,
            framesEncoded: s.framesEncoded,
            frameWidth: s.frameWidth,
            bytesSent: s.bytesSent,
            qualityLimitationReason: s.qualityLimitationReason,
          });
        } else if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
          const local = report.get(s.localCandidateId);
          const remoteCand = report.get(s.remoteCandidateId);
          // The sender's bandwidth estimate (send-side, from transport-cc
          // feedback), on the pair that carries the media.
          info.availableOutgoingBitrate = s.availableOutgoingBitrate;
          info.selectedPair = {
            local: local && `${local.candidateType} ${local.address}:${local.port}/${local.protocol}`,
            remote:
              remoteCand &&
              `${remoteCand.candidateType} ${remoteCand.address}:${remoteCand.port}/${remoteCand.protocol}`,
          };
        }
      }
      info.outbound = outbound;
    }
    return { at: Date.now(), remote, unmatchedInbound: unmatched, peerConnections: pcs };
  }

  /**
   * Closes the signalling WebSocket from inside the page, as a dead network
   * path would, without going through the SDK (which would treat it as a
   * deliberate close). Returns how many sockets it closed.
   */
  cutSignal(code = 4000, reason = 'stoa e2e: cut'): number {
    let n = 0;
    for (const ws of webSockets) {
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) {
        ws.close(code, reason);
        n++;
      }
    }
    this.note('cutSignal', `closed ${n} websocket(s)`);
    return n;
  }
}

function describe(args: unknown[]): string | undefined {
  const parts: string[] = [];
  for (const a of args) {
    if (a instanceof RemoteParticipant) parts.push(`${a.identity}/${a.sid}`);
    else if (a && typeof a === 'object' && 'sid' in a && 'kind' in a) parts.push(`${(a as any).kind}:${(a as any).sid}`);
    else if (typeof a === 'string' || typeof a === 'number') parts.push(String(a));
    else if (a instanceof Error) parts.push(a.message);
  }
  return parts.length ? parts.join(' ') : undefined;
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.searchParams.has('access_token')) u.searchParams.set('access_token', '<redacted>');
    if (u.searchParams.has('join_request')) u.searchParams.set('join_request', '<…>');
    return u.toString();
  } catch {
    return url;
  }
}

function setStatus(text: string) {
  const el = document.getElementById('status');
  if (el) el.textContent = text;
}

const config = readConfig();
if (config?.logLevel) setLogLevel(config.logLevel as LogLevel);

let harness: Harness | undefined;
window.stoa = {
  ready: true,
  sdkVersion,
  /** Starts the participant; a no-op returning false when already started. */
  start(cfg?: Partial<Config>): boolean {
    if (harness) return false;
    const c = cfg ? { single: true, ...config, ...cfg } : config;
    if (!c?.url || !c.token) throw new Error('stoa: no url/token configured');
    harness = new Harness(c as Config);
    void harness.run();
    return true;
  },
  state: () => harness?.state() ?? { phase: 'idle', sdkVersion },
  stats: async () => (harness ? harness.stats() : { at: Date.now(), remote: [], peerConnections: [] }),
  cutSignal: (code?: number) => harness?.cutSignal(code) ?? 0,
  disconnect: async () => harness?.room.disconnect(),
};

if (config) (window.stoa as { start: () => boolean }).start();
else setStatus('idle: pass ?url=...&token=... or call stoa.start({url, token, single})');
