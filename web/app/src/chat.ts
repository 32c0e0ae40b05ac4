// Chat over LiveKit data messages: reliable packets on the "stoa.chat"
// topic carrying {"text", "id", "ts"} as JSON. In an E2EE meeting
// livekit-client encrypts them with the meeting key too.
import { type RemoteParticipant, type Room } from 'livekit-client';
import { announce, byId, h } from './dom';
import { displayName } from './stage';

export const chatTopic = 'stoa.chat';

/** The longest message, in characters (the input's maxlength). */
const maxText = 2000;
/** Packets longer than this are not ours; they are dropped. */
const maxPacket = 16 * 1024;
/** Older messages are dropped from the page past this many. */
const maxShown = 500;

interface Message {
  text: string;
  id: string;
  ts: number;
}

export class Chat {
  private unread = 0;
  private readonly log = byId<HTMLOListElement>('chat-log');
  private readonly input = byId<HTMLInputElement>('chat-input');
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder();

  /** onUnread is told how many messages arrived while the chat was closed. */
  constructor(
    private readonly room: Room,
    private readonly isOpen: () => boolean,
    private readonly onUnread: (n: number) => void,
  ) {
    byId<HTMLFormElement>('chat-form').onsubmit = (e) => {
      e.preventDefault();
      void this.send();
    };
  }

  /** Enables the input if the token allows sending data. */
  setAllowed(allowed: boolean) {
    this.input.disabled = !allowed;
    this.input.placeholder = allowed ? 'Message everyone' : 'You cannot send messages in this meeting';
    byId('chat-form').querySelector('button')!.disabled = !allowed;
  }

  /** The chat panel was opened: messages count as read. */
  opened() {
    this.unread = 0;
    this.onUnread(0);
    this.log.lastElementChild?.scrollIntoView({ block: 'end' });
    this.input.focus();
  }

  /** Handles a packet on the chat topic. */
  receive(payload: Uint8Array, from?: RemoteParticipant) {
    if (payload.byteLength > maxPacket) return;
    let m: Partial<Message>;
    try {
      m = JSON.parse(this.decoder.decode(payload));
    } catch {
      return;
    }
    if (typeof m?.text !== 'string' || m.text.trim() === '') return;
    const text = m.text.slice(0, maxText);
    const name = from ? displayName(from) : 'Someone';
    this.add(name, from?.identity ?? '', text, false);
    if (!this.isOpen()) {
      this.unread++;
      this.onUnread(this.unread);
    }
    announce(`${name} says: ${text.length > 140 ? `${text.slice(0, 140)}…` : text}`);
  }

  private async send() {
    const text = this.input.value.trim().slice(0, maxText);
    if (!text) return;
    const m: Message = { text, id: crypto.randomUUID(), ts: Date.now() };
    try {
      await this.room.localParticipant.publishData(this.encoder.encode(JSON.stringify(m)), {
        reliable: true,
        topic: chatTopic,
      });
    } catch (e) {
      announce('Your message could not be sent');
      this.add('', '', `Not sent: ${text}`, true, true);
      return;
    }
    this.input.value = '';
    this.add('You', this.room.localParticipant.identity, text, true);
  }

  private add(name: string, identity: string, text: string, mine: boolean, failed = false) {
    const time = new Date();
    const li = h(
      'li',
      { class: `${mine ? 'mine' : ''}${failed ? ' failed' : ''}`, 'data-from': identity },
      h(
        'div',
        { class: 'meta' },
        h('span', { class: 'from', text: name }),
        h('time', {
          datetime: time.toISOString(),
          text: time.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }),
        }),
      ),
      h('p', { class: 'text', text }),
    );
    this.log.append(li);
    while (this.log.childElementCount > maxShown) this.log.firstElementChild!.remove();
    li.scrollIntoView({ block: 'end' });
  }
}
