// The meeting page at /j/{slug}: asks the links API what the link grants,
// shows the pre-join screen, then the call. The E2EE key, if any, is read
// from the URL fragment (#key=...), which browsers never send to a server.
import { isE2EESupported, type Room } from 'livekit-client';
import { APIError, joinLink, keyFromHash, linkInfo, slugFromPath, type LinkInfo } from './api';
import { Call } from './call';
import { errorText } from './dom';
import { apiFailure, e2eeUnsupported, missingKey, noWebRTC, showFailure, type Failure } from './failure';
import { PreJoin } from './prejoin';

declare global {
  interface Window {
    /** The meeting's livekit-client Room, once joining starts. */
    stoaMeeting?: { room: Room };
  }
}

function fail(e: unknown): Failure {
  if (e instanceof APIError) return apiFailure(e);
  return { code: 'internal', title: 'Something went wrong', text: errorText(e), retry: true };
}

/** The E2EE worker script, named in index.html by the build. */
function workerURL(): string {
  const meta = document.querySelector<HTMLMetaElement>('meta[name="stoa-e2ee-worker"]');
  return new URL(meta?.content ?? '', document.baseURI).toString();
}

async function main() {
  if (typeof RTCPeerConnection === 'undefined' || !navigator.mediaDevices) {
    showFailure(noWebRTC);
    return;
  }
  const slug = slugFromPath(location.pathname);
  const key = keyFromHash(location.hash);
  if (!slug) {
    showFailure(apiFailure(new APIError('link_not_found', 'no link in the address')));
    return;
  }
  let info: LinkInfo;
  try {
    info = await linkInfo(slug);
  } catch (e) {
    showFailure(fail(e));
    return;
  }
  if (info.e2ee && !key) {
    showFailure(missingKey);
    return;
  }
  if (info.e2ee && !isE2EESupported()) {
    showFailure(e2eeUnsupported);
    return;
  }

  const choice = await new PreJoin(info).run();
  PreJoin.busy(true);
  try {
    const grant = await joinLink(slug, choice.name);
    // The link may have changed since the first answer; the grant decides.
    if (grant.e2ee && !key) throw missingKey;
    if (grant.e2ee && !isE2EESupported()) throw e2eeUnsupported;
    const call = new Call(grant, choice, key, workerURL());
    // For the browser console and the browser tests (app/test/meeting.mjs).
    window.stoaMeeting = { room: call.room };
    await call.join();
  } catch (e) {
    choice.video?.stop();
    choice.audio?.stop();
    showFailure(e instanceof Error ? fail(e) : (e as Failure));
  } finally {
    PreJoin.busy(false);
  }
}

void main();
