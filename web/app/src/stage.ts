// The call's picture: a tile per participant in a responsive grid, remote
// screen shares large in the focus area, and the participant list. sync()
// brings the DOM in line with the room; it is cheap enough to call after
// every room event for the meetings this page is for (a few dozen people).
import {
  Track,
  type Participant,
  type Room,
  type TrackPublication,
  type VideoTrack,
} from 'livekit-client';
import { byId, h, icon } from './dom';

/** The attribute that holds a raised hand: the time it was raised (ms). */
export const handAttribute = 'stoa.hand';

/** Tiles are 16:9, the shape of the cameras the page asks for. */
const tileAspect = 16 / 9;
/** The grid's gap in px (meeting.css .grid gap). */
const tileGap = 8;
/** Below this width a tile is too small to see a face; the grid scrolls. */
const minTileWidth = 160;

export type Quality = 'excellent' | 'good' | 'poor' | 'lost' | 'unknown';

const qualityWords: Record<Quality, string> = {
  excellent: 'excellent',
  good: 'good',
  poor: 'poor',
  lost: 'lost',
  unknown: 'unknown',
};

interface Tile {
  el: HTMLElement;
  video: HTMLVideoElement;
  name: HTMLElement;
  avatar: HTMLElement;
  track?: VideoTrack;
}

export function displayName(p: Participant): string {
  return p.name || p.identity || 'Guest';
}

export function handRaised(p: Participant): boolean {
  return !!p.attributes?.[handAttribute];
}

function initials(name: string): string {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  const s = parts.length > 1 ? parts[0][0] + parts[parts.length - 1][0] : (parts[0] ?? '?').slice(0, 2);
  return s.toUpperCase();
}

function setData(el: HTMLElement, key: string, value: string) {
  if (el.dataset[key] !== value) el.dataset[key] = value;
}

function setText(el: HTMLElement, text: string) {
  if (el.textContent !== text) el.textContent = text;
}

/** Makes els the children of parent, in order, moving as few as possible. */
function place(parent: HTMLElement, els: HTMLElement[]) {
  els.forEach((el, i) => {
    if (parent.children[i] !== el) parent.insertBefore(el, parent.children[i] ?? null);
  });
  while (parent.children.length > els.length) parent.lastElementChild!.remove();
}

function micMuted(p: Participant): boolean {
  const pub = p.getTrackPublication(Track.Source.Microphone);
  return !pub || pub.isMuted || !pub.track;
}

function cameraOn(p: Participant): boolean {
  const pub = p.getTrackPublication(Track.Source.Camera);
  return !!pub && !pub.isMuted && !!pub.track;
}

export class Stage {
  private readonly tiles = new Map<string, Tile>();
  private readonly grid = byId('grid');
  private readonly focus = byId('focus');
  private readonly people = byId('people');

  private readonly resize = new ResizeObserver(() => this.layout());

  constructor(private readonly room: Room) {
    this.resize.observe(this.grid);
  }

  /**
   * Sizes the grid's tiles: the column count whose 16:9 tiles come out
   * largest in the grid's box (the usual video-grid fit), but never
   * smaller than minTileWidth; past that the grid scrolls.
   */
  private layout() {
    const n = this.grid.childElementCount;
    const W = this.grid.clientWidth;
    const H = this.grid.clientHeight;
    if (n === 0 || W === 0 || H === 0) return;
    let best = { w: 0, h: 0 };
    for (let cols = 1; cols <= n; cols++) {
      const rows = Math.ceil(n / cols);
      let w = (W - tileGap * (cols - 1)) / cols;
      let h = w / tileAspect;
      if (h * rows + tileGap * (rows - 1) > H) {
        h = (H - tileGap * (rows - 1)) / rows;
        w = h * tileAspect;
      }
      if (w > best.w) best = { w, h };
    }
    if (best.w < minTileWidth) best = { w: minTileWidth, h: minTileWidth / tileAspect };
    this.grid.style.setProperty('--tile-w', `${Math.floor(best.w)}px`);
    this.grid.style.setProperty('--tile-h', `${Math.floor(best.h)}px`);
  }

  /** Redraws tiles and the participant list from the room's state. */
  sync(qualities: Map<string, Quality>) {
    const room = this.room;
    const local = room.localParticipant;
    const all: Participant[] = [local, ...room.remoteParticipants.values()];
    const seen = new Set<string>();
    const gridEls: HTMLElement[] = [];
    const focusEls: HTMLElement[] = [];
    const loudest = room.activeSpeakers[0]?.identity;

    for (const p of all) {
      const isLocal = p === local;
      const camKey = `${p.identity}\u0000camera`;
      seen.add(camKey);
      const cam = p.getTrackPublication(Track.Source.Camera);
      const tile = this.tile(camKey, p, 'camera', isLocal);
      gridEls.push(tile.el);
      this.show(tile, cam, isLocal);
      const muted = micMuted(p);
      const hand = handRaised(p);
      const q = qualities.get(p.identity) ?? 'unknown';
      setText(tile.name, isLocal ? `${displayName(p)} (you)` : displayName(p));
      setText(tile.avatar, initials(displayName(p)));
      setData(tile.el, 'muted', String(muted));
      setData(tile.el, 'video', cameraOn(p) ? 'on' : 'off');
      setData(tile.el, 'speaking', String(p.isSpeaking));
      setData(tile.el, 'active', String(p.identity === loudest && p.isSpeaking));
      setData(tile.el, 'hand', String(hand));
      setData(tile.el, 'quality', q);
      const label = [
        isLocal ? `${displayName(p)} (you)` : displayName(p),
        muted ? 'microphone muted' : 'microphone on',
        cameraOn(p) ? '' : 'camera off',
        hand ? 'hand raised' : '',
        p.isSpeaking ? 'speaking' : '',
      ]
        .filter(Boolean)
        .join(', ');
      if (tile.el.getAttribute('aria-label') !== label) tile.el.setAttribute('aria-label', label);

      const screen = p.getTrackPublication(Track.Source.ScreenShare);
      if (screen?.track) {
        const key = `${p.identity}\u0000screen`;
        seen.add(key);
        const st = this.tile(key, p, 'screen_share', isLocal);
        // Remote screens go large; one's own stays small (no mirror hall).
        (isLocal ? gridEls : focusEls).push(st.el);
        this.show(st, screen, false);
        setText(st.name, isLocal ? 'Your screen' : `${displayName(p)}'s screen`);
        st.el.setAttribute('aria-label', st.name.textContent ?? '');
        setData(st.el, 'video', 'on');
      }
    }

    for (const [key, tile] of this.tiles) {
      if (!seen.has(key)) {
        tile.track?.detach(tile.video);
        tile.el.remove();
        this.tiles.delete(key);
      }
    }

    place(this.grid, gridEls);
    place(this.focus, focusEls);
    const focused = focusEls.length > 0;
    this.focus.hidden = !focused;
    setData(byId('stage'), 'layout', focused ? 'focus' : 'grid');
    setData(this.grid, 'count', String(this.grid.childElementCount));
    this.layout();
    this.syncPeople(all, qualities);
  }

  /** Detaches every video; the room is gone. */
  clear() {
    this.resize.disconnect();
    for (const tile of this.tiles.values()) {
      tile.track?.detach(tile.video);
      tile.el.remove();
    }
    this.tiles.clear();
    this.people.replaceChildren();
  }

  private tile(key: string, p: Participant, source: string, isLocal: boolean): Tile {
    let t = this.tiles.get(key);
    if (t) return t;
    const video = h('video', { autoplay: true, playsinline: true, muted: true });
    video.muted = true; // audio plays through separate elements
    const name = h('span', { class: 'name' });
    const avatar = h('div', { class: 'avatar', 'aria-hidden': 'true' });
    const caption = h(
      'div',
      { class: 'caption' },
      h('span', { class: 'mic-off', title: 'Microphone muted' }, icon('micOff')),
      name,
      h('span', { class: 'hand', title: 'Hand raised' }, icon('hand')),
      h('span', { class: 'quality', 'aria-hidden': 'true' }, h('i'), h('i'), h('i')),
    );
    const el = h(
      'div',
      {
        class: `tile${source === 'screen_share' ? ' screen' : ''}${isLocal ? ' local' : ''}`,
        role: 'listitem',
        'data-identity': p.identity,
        'data-source': source,
      },
      video,
      avatar,
      caption,
    );
    t = { el, video, name, avatar };
    this.tiles.set(key, t);
    return t;
  }

  /** Attaches the publication's video track to the tile, or detaches it. */
  private show(tile: Tile, pub: TrackPublication | undefined, mirror: boolean) {
    const track = pub?.track && !pub.isMuted ? (pub.track as VideoTrack) : undefined;
    if (track === tile.track) return;
    tile.track?.detach(tile.video);
    tile.track = track;
    if (track) track.attach(tile.video);
    else tile.video.srcObject = null;
    tile.video.classList.toggle('mirror', mirror);
  }

  private syncPeople(all: Participant[], qualities: Map<string, Quality>) {
    const local = this.room.localParticipant;
    // Raised hands first, in the order they went up; then you; then by name.
    const order = [...all].sort((a, b) => {
      const ha = Number(a.attributes?.[handAttribute] || 0);
      const hb = Number(b.attributes?.[handAttribute] || 0);
      if (!!ha !== !!hb) return ha ? -1 : 1;
      if (ha && hb && ha !== hb) return ha - hb;
      if (a === local || b === local) return a === local ? -1 : 1;
      return displayName(a).localeCompare(displayName(b));
    });
    const items = order.map((p) => {
      const states = [
        micMuted(p) ? 'muted' : '',
        cameraOn(p) ? '' : 'camera off',
        p.getTrackPublication(Track.Source.ScreenShare) ? 'sharing screen' : '',
        handRaised(p) ? 'hand raised' : '',
      ].filter(Boolean);
      const q = qualities.get(p.identity) ?? 'unknown';
      return h(
        'li',
        {
          'data-identity': p.identity,
          'data-hand': String(handRaised(p)),
          'data-muted': String(micMuted(p)),
        },
        h('span', { class: 'avatar small', 'aria-hidden': 'true', text: initials(displayName(p)) }),
        h(
          'span',
          { class: 'who' },
          h('span', { class: 'name', text: p === local ? `${displayName(p)} (you)` : displayName(p) }),
          h('span', { class: 'states muted', text: states.join(', ') }),
        ),
        handRaised(p) ? h('span', { class: 'hand', title: 'Hand raised' }, icon('hand')) : '',
        h(
          'span',
          { class: 'quality', 'data-quality': q, role: 'img', 'aria-label': `Connection ${qualityWords[q]}` },
          h('i'),
          h('i'),
          h('i'),
        ),
      );
    });
    this.people.replaceChildren(...items);
    setText(byId('people-title'), `Participants (${all.length})`);
  }
}
