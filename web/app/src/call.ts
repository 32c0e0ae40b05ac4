// The call: one livekit-client Room, the controls, keyboard shortcuts and
// what the room's events change on the page.
import {
  ExternalE2EEKeyProvider,
  MediaDeviceFailure,
  Room,
  RoomEvent,
  Track,
  type ConnectionQuality,
  type DisconnectReason,
  type Participant,
  type RemoteParticipant,
  type RemoteTrack,
  type RemoteTrackPublication,
  type TrackPublication,
} from 'livekit-client';
import type { JoinGrant } from './api';
import { Chat, chatTopic } from './chat';
import { announce, byId, errorText, setButton, showScreen } from './dom';
import { connectFailure, disconnectFailure, mediaMessage, showFailure } from './failure';
import type { Choice } from './prejoin';
import { QualityMonitor } from './quality';
import { Stage, displayName, handAttribute, handRaised } from './stage';

/** How long a toast stays. */
const toastMs = 6000;
/** How long the validate probe after a failed connect may take. */
const probeTimeoutMs = 5000;

type Panel = 'chat' | 'people';

export class Call {
  readonly room: Room;
  private readonly stage: Stage;
  private readonly chat: Chat;
  private readonly quality: QualityMonitor;
  private readonly keyProvider?: ExternalE2EEKeyProvider;
  private panel: Panel | undefined;
  private leaving = false;
  private reconnecting = false;
  private toastTimer: number | undefined;
  private syncQueued = false;
  private readonly decryptWarned = new Set<string>();

  /**
   * grant is the links API's answer; key the E2EE key from the URL fragment
   * (required when grant.e2ee); workerURL the bundled E2EE worker script.
   */
  constructor(
    private readonly grant: JoinGrant,
    private readonly choice: Choice,
    private readonly key: string,
    workerURL: string,
  ) {
    if (grant.e2ee) this.keyProvider = new ExternalE2EEKeyProvider();
    this.room = new Room({
      adaptiveStream: true,
      dynacast: true,
      videoCaptureDefaults: { deviceId: choice.cameraId || undefined },
      audioCaptureDefaults: { deviceId: choice.micId || undefined },
      publishDefaults: { simulcast: true, videoCodec: 'vp8' },
      encryption: this.keyProvider ? { keyProvider: this.keyProvider, worker: new Worker(workerURL) } : undefined,
    });
    this.stage = new Stage(this.room);
    this.quality = new QualityMonitor(this.room, () => this.sync());
    this.chat = new Chat(
      this.room,
      () => this.panel === 'chat',
      (n) => {
        const btn = byId('btn-chat');
        btn.dataset.unread = n > 0 ? String(n) : '';
        setButton(btn as HTMLButtonElement, 'chat', n > 0 ? `Chat (${n} new)` : 'Chat');
      },
    );
    this.listen();
  }

  /**
   * Connects and publishes what the guest chose. On failure it shows the
   * failure screen and releases the devices.
   */
  async join(): Promise<boolean> {
    const { room, grant, choice } = this;
    try {
      if (this.keyProvider) {
        await this.keyProvider.setKey(this.key);
        await room.setE2EEEnabled(true);
      }
      await room.connect(grant.url, grant.token, { autoSubscribe: true });
    } catch (e) {
      choice.video?.stop();
      choice.audio?.stop();
      const { status, body } = await probe(grant.url, grant.token);
      showFailure(connectFailure(e, status, body));
      return false;
    }

    this.setupControls();
    document.title = `${grant.room} · Stoa`;
    byId('call-title').textContent = grant.room;
    byId('call-e2ee').hidden = !grant.e2ee;
    byId('call').dataset.viewOnly = String(grant.view_only);
    this.chat.setAllowed(room.localParticipant.permissions?.canPublishData !== false);
    showScreen('call');
    const others = room.remoteParticipants.size;
    announce(
      `You joined ${grant.room}${grant.view_only ? ' as a viewer' : ''}. ` +
        (others === 0 ? 'Nobody else is here yet.' : `${others} other${others === 1 ? ' is' : 's are'} here.`),
    );

    if (grant.view_only) {
      choice.video?.stop();
      choice.audio?.stop();
    } else {
      const lp = room.localParticipant;
      // One failing does not stop the other; both can be turned on later.
      if (choice.audio) {
        await lp.publishTrack(choice.audio, { source: Track.Source.Microphone }).catch((e) => {
          choice.audio?.stop();
          this.toast(`Your microphone could not be shared: ${errorText(e)}`);
        });
      }
      if (choice.video) {
        await lp.publishTrack(choice.video, { source: Track.Source.Camera, simulcast: true }).catch((e) => {
          choice.video?.stop();
          this.toast(`Your camera could not be shared: ${errorText(e)}`);
        });
      }
    }
    await room.startAudio().catch(() => undefined);
    this.updateAudioUnlock();
    this.quality.start();
    this.sync();
    this.refreshButtons();
    return true;
  }

  // ------------------------------------------------------------- events

  private listen() {
    const room = this.room;
    const sync = () => this.sync();
    room
      .on(RoomEvent.ParticipantConnected, (p: RemoteParticipant) => {
        announce(`${displayName(p)} joined`);
        sync();
      })
      .on(RoomEvent.ParticipantDisconnected, (p: RemoteParticipant) => {
        announce(`${displayName(p)} left`);
        sync();
      })
      .on(RoomEvent.TrackSubscribed, (track: RemoteTrack, _pub: RemoteTrackPublication, p: RemoteParticipant) => {
        if (track.kind === Track.Kind.Audio) {
          const el = track.attach();
          el.dataset.identity = p.identity;
          el.dataset.source = track.source;
          byId('audio-sink').append(el);
        }
        sync();
      })
      .on(RoomEvent.TrackUnsubscribed, (track: RemoteTrack) => {
        if (track.kind === Track.Kind.Audio) for (const el of track.detach()) el.remove();
        sync();
      })
      .on(RoomEvent.TrackPublished, (pub: RemoteTrackPublication, p: RemoteParticipant) => {
        if (pub.source === Track.Source.ScreenShare) announce(`${displayName(p)} is sharing their screen`);
        sync();
      })
      .on(RoomEvent.TrackUnpublished, (pub: RemoteTrackPublication, p: RemoteParticipant) => {
        if (pub.source === Track.Source.ScreenShare) announce(`${displayName(p)} stopped sharing their screen`);
        sync();
      })
      .on(RoomEvent.TrackMuted, sync)
      .on(RoomEvent.TrackUnmuted, sync)
      .on(RoomEvent.LocalTrackPublished, () => {
        sync();
        this.refreshButtons();
      })
      .on(RoomEvent.LocalTrackUnpublished, (pub: TrackPublication) => {
        // Also when the browser's own "Stop sharing" ends a screen share.
        if (pub.source === Track.Source.ScreenShare) announce('You stopped sharing your screen');
        sync();
        this.refreshButtons();
      })
      .on(RoomEvent.ActiveSpeakersChanged, sync)
      .on(RoomEvent.ParticipantNameChanged, sync)
      .on(RoomEvent.ParticipantAttributesChanged, (changed: Record<string, string>, p: Participant) => {
        if (handAttribute in changed && p !== room.localParticipant) {
          announce(`${displayName(p)} ${handRaised(p) ? 'raised their hand' : 'lowered their hand'}`);
        }
        sync();
        this.refreshButtons();
      })
      .on(RoomEvent.DataReceived, (payload: Uint8Array, p?: RemoteParticipant, _kind?: unknown, topic?: string) => {
        if (topic === chatTopic) this.chat.receive(payload, p);
      })
      .on(RoomEvent.ConnectionQualityChanged, (q: ConnectionQuality, p: Participant) => this.quality.fromServer(q, p))
      .on(RoomEvent.SignalReconnecting, () => this.setReconnecting(true))
      .on(RoomEvent.Reconnecting, () => this.setReconnecting(true))
      .on(RoomEvent.Reconnected, () => this.setReconnecting(false))
      .on(RoomEvent.Disconnected, (reason?: DisconnectReason) => this.disconnected(reason))
      .on(RoomEvent.AudioPlaybackStatusChanged, () => this.updateAudioUnlock())
      .on(RoomEvent.MediaDevicesError, (e: Error) => this.toast(mediaMessage(e, 'camera or microphone')))
      .on(RoomEvent.EncryptionError, (e: Error, p?: Participant) => {
        const id = p?.identity ?? '';
        if (this.decryptWarned.has(id)) return;
        this.decryptWarned.add(id);
        this.toast(
          p && p !== room.localParticipant
            ? `${displayName(p)}'s audio and video cannot be decrypted. They may have opened a link with a different key.`
            : `Encryption failed: ${errorText(e)}`,
        );
      })
      .on(RoomEvent.ParticipantEncryptionStatusChanged, () => {
        byId('call-e2ee').hidden = !room.isE2EEEnabled;
      });
  }

  /** Redraws the stage once per animation frame at most. */
  private sync() {
    if (this.syncQueued) return;
    this.syncQueued = true;
    requestAnimationFrame(() => {
      this.syncQueued = false;
      if (this.leaving) return;
      this.stage.sync(this.quality.byIdentity);
      const own = this.quality.byIdentity.get(this.room.localParticipant.identity) ?? 'unknown';
      const q = byId('call-quality');
      q.dataset.quality = own;
      q.setAttribute('aria-label', `Your connection: ${own}`);
    });
  }

  private setReconnecting(on: boolean) {
    if (on === this.reconnecting) return;
    this.reconnecting = on;
    byId('banner').hidden = !on;
    byId('call').dataset.reconnecting = String(on);
    announce(on ? 'Connection lost. Reconnecting' : 'Reconnected');
  }

  private disconnected(reason?: DisconnectReason) {
    this.quality.stop();
    this.stage.clear();
    for (const el of byId('audio-sink').querySelectorAll('audio')) el.remove();
    this.choice.video?.stop();
    this.choice.audio?.stop();
    document.removeEventListener('keydown', this.onKey);
    if (this.leaving) return; // leave() shows its own screen
    this.leaving = true;
    const f = disconnectFailure(reason);
    if (f) {
      showFailure(f);
      return;
    }
    showLeft('You are no longer in the meeting.');
  }

  private updateAudioUnlock() {
    const btn = byId<HTMLButtonElement>('audio-unlock');
    btn.hidden = this.room.canPlaybackAudio;
    btn.onclick = () => void this.room.startAudio().then(() => this.updateAudioUnlock());
  }

  // ----------------------------------------------------------- controls

  private setupControls() {
    const viewOnly = this.grant.view_only || this.room.localParticipant.permissions?.canPublish === false;
    for (const b of document.querySelectorAll<HTMLButtonElement>('.controls [data-publish]')) b.hidden = viewOnly;
    if (!navigator.mediaDevices?.getDisplayMedia) byId('btn-share').hidden = true;
    byId('btn-mic').onclick = () => void this.toggleMic();
    byId('btn-camera').onclick = () => void this.toggleCamera();
    byId('btn-share').onclick = () => void this.toggleShare();
    byId('btn-hand').onclick = () => void this.toggleHand();
    byId('btn-chat').onclick = () => this.togglePanel('chat');
    byId('btn-people').onclick = () => this.togglePanel('people');
    byId('btn-leave').onclick = () => void this.leave();
    for (const b of document.querySelectorAll<HTMLButtonElement>('#panel [data-close]')) {
      b.onclick = () => this.togglePanel(undefined);
    }
    document.addEventListener('keydown', this.onKey);
    setButton(byId('btn-chat'), 'chat', 'Chat');
    setButton(byId('btn-people'), 'people', 'Participants');
    setButton(byId('btn-leave'), 'leave', 'Leave');
  }

  private readonly onKey = (e: KeyboardEvent) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat || this.leaving) return;
    const t = e.target as HTMLElement | null;
    if (t?.closest('input, textarea, select, [contenteditable]')) {
      if (e.key === 'Escape' && this.panel) this.togglePanel(undefined);
      return;
    }
    const publish = !this.grant.view_only;
    switch (e.key.toLowerCase()) {
      case 'm':
        if (publish) void this.toggleMic();
        break;
      case 'v':
        if (publish) void this.toggleCamera();
        break;
      case 's':
        if (publish && !byId('btn-share').hidden) void this.toggleShare();
        break;
      case 'h':
        void this.toggleHand();
        break;
      case 'c':
        this.togglePanel('chat');
        break;
      case 'p':
        this.togglePanel('people');
        break;
      case 'escape':
        if (this.panel) this.togglePanel(undefined);
        break;
      default:
        return;
    }
    e.preventDefault();
  };

  private refreshButtons() {
    const lp = this.room.localParticipant;
    const mic = lp.isMicrophoneEnabled;
    const cam = lp.isCameraEnabled;
    const share = lp.isScreenShareEnabled;
    const hand = handRaised(lp);
    setButton(byId('btn-mic'), mic ? 'mic' : 'micOff', mic ? 'Mute' : 'Unmute');
    setButton(byId('btn-camera'), cam ? 'camera' : 'cameraOff', cam ? 'Stop video' : 'Start video');
    setButton(byId('btn-share'), 'screen', share ? 'Stop sharing' : 'Share screen');
    setButton(byId('btn-hand'), 'hand', hand ? 'Lower hand' : 'Raise hand');
    byId('btn-mic').dataset.on = String(mic);
    byId('btn-camera').dataset.on = String(cam);
    byId('btn-share').dataset.on = String(share);
    byId('btn-hand').dataset.on = String(hand);
  }

  private async toggleMic() {
    const lp = this.room.localParticipant;
    const on = !lp.isMicrophoneEnabled;
    try {
      await lp.setMicrophoneEnabled(on);
      announce(on ? 'Microphone on' : 'Microphone muted');
    } catch (e) {
      this.toast(mediaMessage(e, 'microphone'));
    }
    this.refreshButtons();
    this.sync();
  }

  private async toggleCamera() {
    const lp = this.room.localParticipant;
    const on = !lp.isCameraEnabled;
    try {
      await lp.setCameraEnabled(on);
      announce(on ? 'Camera on' : 'Camera off');
    } catch (e) {
      this.toast(mediaMessage(e, 'camera'));
    }
    this.refreshButtons();
    this.sync();
  }

  private async toggleShare() {
    const lp = this.room.localParticipant;
    const on = !lp.isScreenShareEnabled;
    try {
      await lp.setScreenShareEnabled(on, { audio: true, selfBrowserSurface: 'exclude', surfaceSwitching: 'include' });
      if (on) announce('You are sharing your screen');
    } catch (e) {
      // Cancelling the browser's picker is not an error worth a toast.
      if (MediaDeviceFailure.getFailure(e) === MediaDeviceFailure.PermissionDenied) announce('Screen sharing cancelled');
      else this.toast(`Your screen could not be shared: ${errorText(e)}`);
    }
    this.refreshButtons();
    this.sync();
  }

  private async toggleHand() {
    const lp = this.room.localParticipant;
    const raise = !handRaised(lp);
    try {
      await lp.setAttributes({ [handAttribute]: raise ? String(Date.now()) : '' });
      announce(raise ? 'You raised your hand' : 'You lowered your hand');
    } catch (e) {
      this.toast(`Your hand could not be ${raise ? 'raised' : 'lowered'}: ${errorText(e)}`);
    }
    this.refreshButtons();
    this.sync();
  }

  private togglePanel(which: Panel | undefined) {
    const next = which === this.panel ? undefined : which;
    const opener = this.panel ? byId(this.panel === 'chat' ? 'btn-chat' : 'btn-people') : undefined;
    this.panel = next;
    byId('panel').hidden = !next;
    byId('chat-panel').hidden = next !== 'chat';
    byId('people-panel').hidden = next !== 'people';
    byId('btn-chat').setAttribute('aria-expanded', String(next === 'chat'));
    byId('btn-people').setAttribute('aria-expanded', String(next === 'people'));
    byId('call').dataset.panel = next ?? '';
    if (next === 'chat') this.chat.opened();
    else if (next === 'people') byId('people-title').focus();
    else opener?.focus();
  }

  /** Leaves the meeting and shows the "you left" screen. */
  async leave() {
    if (this.leaving) return;
    this.leaving = true;
    await this.room.disconnect().catch(() => undefined);
    showLeft('');
    announce('You left the meeting');
  }

  private toast(text: string) {
    const t = byId('toast');
    t.textContent = text;
    t.hidden = false;
    window.clearTimeout(this.toastTimer);
    this.toastTimer = window.setTimeout(() => (t.hidden = true), toastMs);
  }
}

function showLeft(text: string) {
  byId('left-text').textContent = text;
  byId('rejoin').onclick = () => location.reload();
  document.title = 'You left the meeting · Stoa';
  showScreen('left');
}

/**
 * Asks the server's validate endpoint what it thinks of the token after a
 * failed connect: livekit-client does the same, but does not tell a full
 * room (503) from other failures. 0 means no answer.
 */
async function probe(wsURL: string, token: string): Promise<{ status: number; body: string }> {
  try {
    const u = new URL(wsURL);
    u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
    u.pathname = `${u.pathname.replace(/\/$/, '')}/rtc/validate`;
    u.searchParams.set('access_token', token);
    const resp = await fetch(u, { cache: 'no-store', signal: AbortSignal.timeout(probeTimeoutMs) });
    return { status: resp.status, body: (await resp.text()).slice(0, 500) };
  } catch {
    return { status: 0, body: '' };
  }
}
