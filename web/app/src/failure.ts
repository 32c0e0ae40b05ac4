// Every way joining can fail, as a message a guest can act on.
import { ConnectionError, ConnectionErrorReason, DisconnectReason, MediaDeviceFailure } from 'livekit-client';
import { APIError } from './api';
import { byId, errorText, showScreen, announce } from './dom';

/** A failure screen: what happened, what to do, and whether retrying may help. */
export interface Failure {
  /** A stable name for tests and logs (data-failure on the screen). */
  code: string;
  title: string;
  text: string;
  hint?: string;
  retry?: boolean;
}

/** The failure for an error of the links API. */
export function apiFailure(e: APIError): Failure {
  switch (e.code) {
    case 'link_not_found':
    case 'not_found':
      return {
        code: 'link_not_found',
        title: 'This meeting link does not work',
        text: 'There is no meeting at this address.',
        hint: 'Check that you opened the whole link, exactly as you received it. A link that was cut short or changed does not work.',
      };
    case 'link_expired':
      return {
        code: 'link_expired',
        title: 'This meeting link has expired',
        text: 'The link was only valid for a limited time.',
        hint: 'Ask the person who invited you for a new link.',
      };
    case 'link_revoked':
      return {
        code: 'link_revoked',
        title: 'This meeting link was withdrawn',
        text: 'The organiser has cancelled this link.',
        hint: 'Ask the person who invited you for a new link.',
      };
    case 'rate_limited':
      return {
        code: 'rate_limited',
        title: 'Too many people are joining right now',
        text: `Please wait ${e.retryAfter > 0 ? `${e.retryAfter} seconds` : 'a moment'} and try again.`,
        retry: true,
      };
    case 'unreachable':
      return {
        code: 'unreachable',
        title: 'The meeting server cannot be reached',
        text: 'Your browser got no answer from the server.',
        hint: 'Check your internet connection, then try again.',
        retry: true,
      };
    case 'bad_request':
      return {
        code: 'bad_request',
        title: 'The server refused to let you join',
        text: e.message,
        retry: true,
      };
    default:
      return {
        code: e.code || 'api_error',
        title: 'The meeting server refused the link',
        text: e.message || `Error ${e.status}`,
        retry: e.status >= 500,
      };
  }
}

export const missingKey: Failure = {
  code: 'e2ee_key_missing',
  title: 'This link is missing its encryption key',
  text: 'The meeting is end-to-end encrypted, and its key travels in the link itself, after "#key=". The link you opened does not have it.',
  hint: 'Open the complete link, exactly as you received it. Some mail and chat programs cut links short.',
};

export const e2eeUnsupported: Failure = {
  code: 'e2ee_unsupported',
  title: 'This browser cannot join encrypted meetings',
  text: 'The meeting is end-to-end encrypted, and this browser lacks the support it needs.',
  hint: 'Use a current version of Chrome, Edge, Firefox or Safari.',
};

export const noWebRTC: Failure = {
  code: 'unsupported_browser',
  title: 'This browser cannot join video meetings',
  text: 'It lacks WebRTC.',
  hint: 'Use a current version of Chrome, Edge, Firefox or Safari.',
};

/**
 * The failure for an error of room.connect. status is what the server's
 * validate endpoint said about the token (0: no answer), which tells a full
 * room (503) from an unreachable server.
 */
export function connectFailure(e: unknown, status: number, body: string): Failure {
  if (status === 503) {
    const room = /max participants/i.test(body);
    return {
      code: room ? 'room_full' : 'server_full',
      title: room ? 'The meeting is full' : 'The server is busy',
      text: room
        ? 'The meeting has reached its maximum number of participants.'
        : 'The server has reached its limit of participants.',
      hint: 'Try again when someone has left.',
      retry: true,
    };
  }
  if (status === 401 || status === 403) {
    return {
      code: 'token_refused',
      title: 'The server refused to let you in',
      text: body || 'The access the link gave you was not accepted.',
      hint: 'Open the link again; if this keeps happening, ask for a new link.',
      retry: true,
    };
  }
  if (status === 0) {
    return {
      code: 'unreachable',
      title: 'The meeting server cannot be reached',
      text: 'The page got a way in, but could not open the connection to the meeting.',
      hint: 'A firewall or proxy may block WebSocket connections. Check your connection, then try again.',
      retry: true,
    };
  }
  let detail = errorText(e);
  if (e instanceof ConnectionError && e.reason === ConnectionErrorReason.Timeout) {
    detail = 'The connection timed out.';
  }
  return {
    code: 'connect_failed',
    title: 'Could not join the meeting',
    text: detail,
    hint: 'If you are behind a strict firewall, media may be blocked. Try again, or from another network.',
    retry: true,
  };
}

/** The screen after the server ended the session, or undefined for a plain leave. */
export function disconnectFailure(reason: DisconnectReason | undefined): Failure | undefined {
  switch (reason) {
    case DisconnectReason.PARTICIPANT_REMOVED:
      return { code: 'removed', title: 'You were removed from the meeting', text: 'A moderator removed you.' };
    case DisconnectReason.ROOM_DELETED:
    case DisconnectReason.ROOM_CLOSED:
      return { code: 'ended', title: 'The meeting has ended', text: 'The meeting was closed for everyone.' };
    case DisconnectReason.DUPLICATE_IDENTITY:
      return {
        code: 'duplicate',
        title: 'You joined from somewhere else',
        text: 'This page left the meeting because you joined it again elsewhere.',
        retry: true,
      };
    case DisconnectReason.JOIN_FAILURE:
    case DisconnectReason.SIGNAL_CLOSE:
    case DisconnectReason.STATE_MISMATCH:
    case DisconnectReason.CONNECTION_TIMEOUT:
    case DisconnectReason.MEDIA_FAILURE:
      return {
        code: 'connection_lost',
        title: 'The connection to the meeting was lost',
        text: 'Reconnecting did not succeed.',
        hint: 'Check your internet connection, then rejoin.',
        retry: true,
      };
    default:
      return undefined;
  }
}

/** A sentence about a camera or microphone that could not be opened. */
export function mediaMessage(e: unknown, what: string): string {
  switch (MediaDeviceFailure.getFailure(e)) {
    case MediaDeviceFailure.PermissionDenied:
      return `Access to your ${what} was denied. Allow it in your browser's site settings (usually the icon left of the address), then reload the page. You can also join without it.`;
    case MediaDeviceFailure.NotFound:
      return `No ${what} was found. You can join without it.`;
    case MediaDeviceFailure.DeviceInUse:
      return `Your ${what} is in use by another application. Close it, or join without it.`;
    default:
      return `Your ${what} could not be started (${errorText(e)}).`;
  }
}

/** Shows the failure screen. A retry reloads the page. */
export function showFailure(f: Failure) {
  byId('failure').dataset.failure = f.code;
  byId('failure-title').textContent = f.title;
  byId('failure-text').textContent = f.text;
  const hint = byId('failure-hint');
  hint.textContent = f.hint ?? '';
  hint.hidden = !f.hint;
  const retry = byId<HTMLButtonElement>('failure-retry');
  retry.hidden = !f.retry;
  retry.onclick = () => location.reload();
  document.title = `${f.title} · Stoa`;
  showScreen('failure');
  announce(f.title);
}
