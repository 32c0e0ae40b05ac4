// The pre-join screen: name, camera and microphone choice with a preview
// and a level meter. The tracks it opens are the ones the call publishes.
import {
  MediaDeviceFailure,
  Room,
  Track,
  createAudioAnalyser,
  createLocalTracks,
  createLocalAudioTrack,
  createLocalVideoTrack,
  type LocalAudioTrack,
  type LocalVideoTrack,
} from 'livekit-client';
import type { LinkInfo } from './api';
import { byId, showScreen, announce } from './dom';
import { mediaMessage } from './failure';

/** What the guest chose. The caller owns (and must stop) the tracks. */
export interface Choice {
  name: string;
  video?: LocalVideoTrack;
  audio?: LocalAudioTrack;
  cameraId?: string;
  micId?: string;
}

const nameKey = 'stoa.name';

export class PreJoin {
  private video?: LocalVideoTrack;
  private audio?: LocalAudioTrack;
  private cameraId = '';
  private micId = '';
  private stopMeter?: () => void;
  /** Why the camera (video) or microphone (audio) could not be opened. */
  private readonly errors = new Map<'video' | 'audio', unknown>();
  private readonly onDeviceChange = () => void this.listDevices();

  constructor(private readonly info: LinkInfo) {}

  /** Shows the screen and resolves when the guest presses Join. */
  async run(): Promise<Choice> {
    const { info } = this;
    byId('prejoin-room').textContent = `Meeting: ${info.room}`;
    byId('prejoin-e2ee').hidden = !info.e2ee;
    byId('prejoin-viewonly').hidden = !info.view_only;
    byId('devices').hidden = info.view_only;
    byId('prejoin').dataset.viewOnly = String(info.view_only);
    const nameInput = byId<HTMLInputElement>('name');
    nameInput.value = localStorage.getItem(nameKey) ?? '';
    document.title = `Join ${info.room} · Stoa`;
    showScreen('prejoin', false);
    nameInput.focus();
    announce(`Join the meeting ${info.room}`);

    if (!info.view_only) {
      byId<HTMLButtonElement>('camera-toggle').onclick = () => void this.toggle('video');
      byId<HTMLButtonElement>('mic-toggle').onclick = () => void this.toggle('audio');
      byId<HTMLSelectElement>('camera-select').onchange = (e) =>
        void this.choose('video', (e.target as HTMLSelectElement).value);
      byId<HTMLSelectElement>('mic-select').onchange = (e) =>
        void this.choose('audio', (e.target as HTMLSelectElement).value);
      navigator.mediaDevices?.addEventListener('devicechange', this.onDeviceChange);
    }
    // The devices open while the guest types; Join waits for them.
    const opening = info.view_only ? Promise.resolve() : this.open();

    const form = byId<HTMLFormElement>('prejoin-form');
    const name = await new Promise<string>((resolve) => {
      form.onsubmit = (e) => {
        e.preventDefault();
        const v = nameInput.value.trim();
        const err = byId('name-error');
        err.hidden = v !== '';
        nameInput.setAttribute('aria-invalid', String(v === ''));
        if (v === '') {
          nameInput.setAttribute('aria-describedby', 'name-error');
          nameInput.focus();
          return;
        }
        resolve(v);
      };
    });
    localStorage.setItem(nameKey, name);
    PreJoin.busy(true);
    await opening;
    this.close();
    return { name, video: this.video, audio: this.audio, cameraId: this.cameraId, micId: this.micId };
  }

  /** Disables the form while joining, or enables it again. */
  static busy(on: boolean) {
    const join = byId<HTMLButtonElement>('join');
    join.disabled = on;
    join.textContent = on ? 'Joining…' : 'Join';
  }

  /** Stops everything but the tracks. */
  private close() {
    this.stopMeter?.();
    this.stopMeter = undefined;
    navigator.mediaDevices?.removeEventListener('devicechange', this.onDeviceChange);
    this.video?.detach();
  }

  /** Opens camera and microphone; one failing does not stop the other. */
  private async open() {
    try {
      const tracks = await createLocalTracks({ audio: true, video: true });
      for (const t of tracks) {
        if (t.kind === Track.Kind.Video) this.video = t as LocalVideoTrack;
        else this.audio = t as LocalAudioTrack;
      }
    } catch {
      // Find out which one failed, and why.
      await this.start('video');
      await this.start('audio');
    }
    this.cameraId = (await this.video?.getDeviceId()) ?? '';
    this.micId = (await this.audio?.getDeviceId()) ?? '';
    this.render();
    await this.listDevices();
  }

  private async start(kind: 'video' | 'audio') {
    try {
      if (kind === 'video') {
        this.video = await createLocalVideoTrack(this.cameraId ? { deviceId: this.cameraId } : {});
      } else {
        this.audio = await createLocalAudioTrack(this.micId ? { deviceId: this.micId } : {});
      }
      this.errors.delete(kind);
    } catch (e) {
      this.errors.set(kind, e);
    }
  }

  private async toggle(kind: 'video' | 'audio') {
    const track = kind === 'video' ? this.video : this.audio;
    if (track) {
      track.stop();
      if (kind === 'video') this.video = undefined;
      else this.audio = undefined;
    } else {
      await this.start(kind);
    }
    this.render();
    const on = kind === 'video' ? !!this.video : !!this.audio;
    announce(`${kind === 'video' ? 'Camera' : 'Microphone'} ${on ? 'on' : 'off'}`);
  }

  private async choose(kind: 'video' | 'audio', deviceId: string) {
    if (kind === 'video') this.cameraId = deviceId;
    else this.micId = deviceId;
    const track = kind === 'video' ? this.video : this.audio;
    try {
      await track?.setDeviceId(deviceId);
    } catch (e) {
      this.errors.set(kind, e);
    }
    this.render();
  }

  private async listDevices() {
    const fill = async (kind: MediaDeviceKind, select: HTMLSelectElement, current: string) => {
      let devices: MediaDeviceInfo[] = [];
      try {
        devices = await Room.getLocalDevices(kind, false);
      } catch {
        devices = [];
      }
      select.replaceChildren(
        ...devices.map((d, i) => {
          const o = new Option(d.label || `${kind === 'videoinput' ? 'Camera' : 'Microphone'} ${i + 1}`, d.deviceId);
          o.selected = d.deviceId === current;
          return o;
        }),
      );
      select.disabled = devices.length === 0;
    };
    await fill('videoinput', byId('camera-select'), this.cameraId);
    await fill('audioinput', byId('mic-select'), this.micId);
  }

  /** Brings preview, toggles, meter and messages in line with the tracks. */
  private render() {
    const preview = byId<HTMLVideoElement>('preview-video');
    if (this.video) this.video.attach(preview);
    else preview.srcObject = null;
    preview.hidden = !this.video;
    byId('preview-off').hidden = !!this.video;

    const cam = byId<HTMLButtonElement>('camera-toggle');
    cam.setAttribute('aria-pressed', String(!!this.video));
    cam.textContent = this.video ? 'Camera on' : 'Camera off';
    const mic = byId<HTMLButtonElement>('mic-toggle');
    mic.setAttribute('aria-pressed', String(!!this.audio));
    mic.textContent = this.audio ? 'Microphone on' : 'Microphone off';

    this.stopMeter?.();
    this.stopMeter = this.audio ? meter(this.audio) : undefined;
    if (!this.audio) byId('mic-level').style.width = '0';

    const camErr = this.errors.get('video');
    const micErr = this.errors.get('audio');
    let msg = '';
    if (camErr !== undefined && micErr !== undefined && MediaDeviceFailure.getFailure(camErr) === MediaDeviceFailure.getFailure(micErr)) {
      msg = mediaMessage(camErr, 'camera and microphone');
    } else {
      msg = [camErr !== undefined ? mediaMessage(camErr, 'camera') : '', micErr !== undefined ? mediaMessage(micErr, 'microphone') : '']
        .filter(Boolean)
        .join(' ');
    }
    const err = byId('device-error');
    err.textContent = msg;
    err.hidden = msg === '';
    byId('prejoin').dataset.camera = this.video ? 'on' : 'off';
    byId('prejoin').dataset.mic = this.audio ? 'on' : 'off';
  }
}

/** Draws the microphone's level into #mic-level until the returned function is called. */
function meter(track: LocalAudioTrack): () => void {
  const bar = byId('mic-level');
  const { calculateVolume, cleanup } = createAudioAnalyser(track, { cloneTrack: true });
  let frame = 0;
  const draw = () => {
    // calculateVolume is an RMS in 0..1; speech sits around 0.05..0.3.
    const level = Math.min(1, Math.sqrt(calculateVolume()) * 1.6);
    bar.style.width = `${(level * 100).toFixed(1)}%`;
    bar.parentElement!.dataset.level = level.toFixed(2);
    frame = requestAnimationFrame(draw);
  };
  frame = requestAnimationFrame(draw);
  return () => {
    cancelAnimationFrame(frame);
    void cleanup();
  };
}
