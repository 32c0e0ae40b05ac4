// Connection quality per participant. A LiveKit server sends
// ConnectionQualityUpdate messages; when it does, they win. Otherwise the
// page measures what it can see itself, every few seconds:
//  - for you: round-trip time and loss that the server reports back for
//    what you send (RTCP receiver reports: remote-inbound-rtp);
//  - for each other participant: loss and jitter of what you receive from
//    them (inbound-rtp), which covers their uplink and your downlink.
import { ConnectionQuality, type Participant, type Room } from 'livekit-client';
import type { Quality } from './stage';

/** How often the page samples its stats. */
export const qualityIntervalMs = 3000;

// Thresholds in the spirit of LiveKit's own scoring (a MOS from loss, jitter
// and RTT): under 2% loss and 200 ms RTT a call sounds clean; past 10% loss
// or 500 ms it breaks up.
const goodLoss = 0.02;
const poorLoss = 0.1;
const goodRttS = 0.2;
const poorRttS = 0.5;
const goodJitterS = 0.03;
const poorJitterS = 0.1;

interface Totals {
  received: number;
  lost: number;
}

function grade(loss: number, rttS: number, jitterS: number): Quality {
  if (loss >= poorLoss || rttS >= poorRttS || jitterS >= poorJitterS) return 'poor';
  if (loss >= goodLoss || rttS >= goodRttS || jitterS >= goodJitterS) return 'good';
  return 'excellent';
}

function fromServer(q: ConnectionQuality): Quality | undefined {
  switch (q) {
    case ConnectionQuality.Excellent:
      return 'excellent';
    case ConnectionQuality.Good:
      return 'good';
    case ConnectionQuality.Poor:
      return 'poor';
    case ConnectionQuality.Lost:
      return 'lost';
    default:
      return undefined;
  }
}

export class QualityMonitor {
  /** The current quality of each participant, by identity. */
  readonly byIdentity = new Map<string, Quality>();
  private readonly last = new Map<string, Totals>();
  private timer: number | undefined;
  private running = false;

  constructor(
    private readonly room: Room,
    private readonly changed: () => void,
  ) {}

  start() {
    this.timer = window.setInterval(() => void this.sample(), qualityIntervalMs);
  }

  stop() {
    window.clearInterval(this.timer);
  }

  /** Takes the server's opinion, when it gives one. */
  fromServer(q: ConnectionQuality, p: Participant) {
    const v = fromServer(q);
    if (v) this.set(p.identity, v);
  }

  private set(identity: string, q: Quality) {
    if (this.byIdentity.get(identity) === q) return;
    this.byIdentity.set(identity, q);
    this.changed();
  }

  private async sample() {
    if (this.running) return;
    this.running = true;
    try {
      const participants: Participant[] = [this.room.localParticipant, ...this.room.remoteParticipants.values()];
      for (const p of participants) {
        if (fromServer(p.connectionQuality)) continue;
        const q = await this.measure(p);
        if (q) this.set(p.identity, q);
      }
      for (const id of this.byIdentity.keys()) {
        if (!participants.some((p) => p.identity === id)) {
          this.byIdentity.delete(id);
          this.last.delete(id);
        }
      }
    } finally {
      this.running = false;
    }
  }

  private async measure(p: Participant): Promise<Quality | undefined> {
    const isLocal = p === this.room.localParticipant;
    let received = 0;
    let lost = 0;
    let rtt = 0;
    let jitter = 0;
    let fraction = 0;
    let any = false;
    for (const pub of p.trackPublications.values()) {
      if (!pub.track || pub.isMuted) continue;
      let report: RTCStatsReport | undefined;
      try {
        report = await pub.track.getRTCStatsReport();
      } catch {
        continue;
      }
      report?.forEach((s: any) => {
        if (isLocal && s.type === 'remote-inbound-rtp') {
          any = true;
          rtt = Math.max(rtt, s.roundTripTime ?? 0);
          fraction = Math.max(fraction, s.fractionLost ?? 0);
          jitter = Math.max(jitter, s.jitter ?? 0);
        } else if (!isLocal && s.type === 'inbound-rtp') {
          any = true;
          received += s.packetsReceived ?? 0;
          lost += Math.max(0, s.packetsLost ?? 0);
          jitter = Math.max(jitter, s.jitter ?? 0);
        }
      });
    }
    if (!any) return undefined;
    if (isLocal) return grade(fraction, rtt, jitter);
    const prev = this.last.get(p.identity);
    this.last.set(p.identity, { received, lost });
    if (!prev) return undefined;
    const dr = received - prev.received;
    const dl = lost - prev.lost;
    if (dr <= 0 && dl <= 0) return received > 0 ? 'lost' : undefined;
    return grade(dl / Math.max(1, dr + dl), 0, jitter);
  }
}
