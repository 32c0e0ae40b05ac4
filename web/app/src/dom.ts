// Small DOM helpers shared by the screens: element lookup and creation,
// switching screens, the live region, and the icons.

/** Returns the element with this id; the page's HTML must have it. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`meeting page: no #${id} in index.html`);
  return el as T;
}

type Props = Record<string, string | boolean | undefined>;

/**
 * Creates an element. Props starting with "data-" or "aria-", and "role",
 * become attributes; "class" sets className; "text" sets textContent (never
 * HTML: names and messages come from other participants).
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === false) continue;
    if (k === 'class') el.className = String(v);
    else if (k === 'text') el.textContent = String(v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  el.append(...children);
  return el;
}

const screens = ['loading', 'failure', 'prejoin', 'call', 'left'] as const;
export type Screen = (typeof screens)[number];

/** Shows one screen and hides the others; focus moves to its heading. */
export function showScreen(name: Screen, focus = true) {
  for (const s of screens) byId(s).hidden = s !== name;
  document.body.dataset.screen = name;
  if (focus) byId(name).querySelector<HTMLElement>('h1')?.focus({ preventScroll: true });
}

let pending: string[] = [];
let timer: number | undefined;

/**
 * Says text through the page's polite live region (screen readers read it
 * once). Messages that come within 100 ms of each other are read together;
 * the region is cleared first so that the same text is read again.
 */
export function announce(text: string) {
  pending.push(text);
  if (timer !== undefined) return;
  const region = byId('announcer');
  region.textContent = '';
  timer = window.setTimeout(() => {
    region.textContent = pending.join('. ');
    pending = [];
    timer = undefined;
  }, 100);
}

// 24x24 icons, drawn with currentColor. They are decorative: every button
// that shows one also has a text label.
const paths: Record<string, string> = {
  mic: 'M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.92V21h2v-3.08A7 7 0 0 0 19 11h-2z',
  micOff:
    'M19 11h-1.7c0 .74-.16 1.43-.43 2.05l1.23 1.23c.56-.98.9-2.09.9-3.28zm-4.02.17c0-.06.02-.11.02-.17V5a3 3 0 0 0-6 0v.18l5.98 5.99zM4.27 3 3 4.27l6.01 6.01V11a3 3 0 0 0 3 3c.22 0 .44-.03.65-.08l1.66 1.66c-.71.33-1.5.52-2.31.52a5.3 5.3 0 0 1-5.3-5.1H5c0 3.41 2.72 6.23 6 6.72V21h2v-3.28c.91-.13 1.77-.45 2.54-.9L19.73 21 21 19.73 4.27 3z',
  camera: 'M17 10.5V7a1 1 0 0 0-1-1H4a1 1 0 0 0-1 1v10a1 1 0 0 0 1 1h12a1 1 0 0 0 1-1v-3.5l4 4v-11l-4 4z',
  cameraOff:
    'M21 6.5l-4 4V7a1 1 0 0 0-1-1H9.82L21 17.18V6.5zM3.27 2 2 3.27 4.73 6H4a1 1 0 0 0-1 1v10a1 1 0 0 0 1 1h12c.21 0 .39-.08.54-.18L19.73 21 21 19.73 3.27 2z',
  screen: 'M20 18a2 2 0 0 0 2-2V6a2 2 0 0 0-2-2H4a2 2 0 0 0-2 2v10a2 2 0 0 0 2 2H0v2h24v-2h-4zM4 6h16v10H4V6zm8 1-4 4h3v3h2v-3h3l-4-4z',
  hand: 'M7 11.5V5a1.5 1.5 0 0 1 3 0v6h1V3.5a1.5 1.5 0 0 1 3 0V11h1V5.5a1.5 1.5 0 0 1 3 0V15a7 7 0 0 1-7 7h-.6a6.5 6.5 0 0 1-5.5-3.1L2.3 13.2a1.5 1.5 0 0 1 2.5-1.6L7 14.5v-3z',
  chat: 'M20 2H4a2 2 0 0 0-2 2v18l4-4h14a2 2 0 0 0 2-2V4a2 2 0 0 0-2-2zM6 9h12v2H6V9zm8 5H6v-2h8v2zm4-6H6V6h12v2z',
  people:
    'M16 11a3 3 0 1 0 0-6 3 3 0 0 0 0 6zm-8 0a3 3 0 1 0 0-6 3 3 0 0 0 0 6zm0 2c-2.33 0-7 1.17-7 3.5V19h14v-2.5C15 14.17 10.33 13 8 13zm8 0c-.29 0-.62.02-.97.05 1.16.84 1.97 1.97 1.97 3.45V19h6v-2.5c0-2.33-4.67-3.5-7-3.5z',
  leave:
    'M12 9c-1.6 0-3.15.25-4.6.72v3.1c0 .39-.23.74-.56.9-.98.49-1.87 1.12-2.66 1.85a1 1 0 0 1-1.41-.01L.29 13.08a1 1 0 0 1 0-1.42C3.34 8.78 7.46 7 12 7s8.66 1.78 11.71 4.66a1 1 0 0 1 0 1.42l-2.48 2.48a1 1 0 0 1-1.41.01 11.3 11.3 0 0 0-2.67-1.85 1 1 0 0 1-.56-.9v-3.1C15.15 9.25 13.6 9 12 9z',
  lock: 'M18 8h-1V6A5 5 0 0 0 7 6v2H6a2 2 0 0 0-2 2v10a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V10a2 2 0 0 0-2-2zM9 6a3 3 0 0 1 6 0v2H9V6zm3 11a2 2 0 1 1 0-4 2 2 0 0 1 0 4z',
};

export type IconName = keyof typeof paths;

/** Returns a decorative (aria-hidden) SVG icon. */
export function icon(name: IconName): SVGSVGElement {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.classList.add('icon');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', paths[name]);
  svg.append(path);
  return svg;
}

/**
 * Sets a control button's icon and visible label. The label is the button's
 * accessible name; the shortcut key is shown in its tooltip.
 */
export function setButton(btn: HTMLButtonElement, ic: IconName, label: string, pressed?: boolean) {
  const key = btn.getAttribute('aria-keyshortcuts');
  btn.replaceChildren(icon(ic), h('span', { class: 'label', text: label }));
  btn.title = key ? `${label} (${key.toUpperCase()})` : label;
  if (pressed !== undefined) btn.setAttribute('aria-pressed', String(pressed));
}

/** The text an unknown value shows in a message. */
export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
