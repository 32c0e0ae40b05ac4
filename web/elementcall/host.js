// The widget host: what Element Web does for an embedded Element Call, cut
// down to one user, one room and one widget, on plain fetch.
//
// It embeds Element Call (EC) in an iframe with the URL parameters Element
// Web uses, runs matrix-widget-api's ClientWidgetApi on its side of the
// postMessage channel, and implements the WidgetDriver by forwarding to the
// homeserver with the user's access token:
//   - capabilities: everything EC asks for is approved (and recorded);
//   - room events and state: PUT /rooms/{id}/send and /state, reads of
//     /rooms/{id}/state and /messages;
//   - a /sync loop feeds new timeline events (feedEvent), state changes
//     (feedStateUpdate: EC's widget client takes state only from
//     update_state, MATRIXRTC.md §9) and to-device messages to the widget;
//     the room's initial state is pushed by ClientWidgetApi itself, through
//     readRoomState, when the capabilities are approved;
//   - OpenID: POST /user/{id}/openid/request_token, approved without asking;
//   - RTC transports (MSC4143): GET .../rtc/transports from Stoa's
//     authorisation service, which serves it for homeservers (Dendrite) that
//     do not.
// Delayed and sticky events are refused: Dendrite has neither.
//
// run.mjs sets window.__ecHostConfig before this script runs:
//   {hsUrl, userId, deviceId, accessToken, roomId, transportsUrl, intent,
//    ecPath, widgetId}
// and reads window.ecHost (state() and the records below).

/* global mxwidgets */
'use strict';

(() => {
  const cfg = window.__ecHostConfig;
  const started = performance.now();

  /** What the host saw; run.mjs reads it through window.ecHost.state(). */
  const rec = {
    phase: 'starting',
    error: undefined,
    capabilities: { requested: [], approved: [] },
    // fromWidget action -> count, in order of first appearance
    actions: {},
    // one line per driver call: {t, call, detail, ok, error}
    driver: [],
    sentEvents: [], // {t, type, stateKey, content}
    toDevice: [], // {t, type, recipients}
    fed: { timeline: 0, state: 0, toDevice: 0 },
    syncs: 0,
    syncErrors: 0,
    joinedAction: false, // EC sent io.element.join
    hangupAction: false,
  };

  const elapsed = () => Math.round(performance.now() - started);

  function note(call, detail, ok = true, error = undefined) {
    const line = { t: elapsed(), call, detail, ok };
    if (error !== undefined) line.error = String(error?.message ?? error);
    rec.driver.push(line);
    if (rec.driver.length > 400) rec.driver.splice(0, rec.driver.length - 400);
    console.log(`[host] ${call} ${JSON.stringify(detail)}${ok ? '' : ` FAILED: ${line.error}`}`);
  }

  // ------------------------------------------------------------ homeserver

  class MatrixError extends Error {
    constructor(status, url, body) {
      super(`${status} ${body?.errcode ?? ''} ${body?.error ?? ''}`.trim());
      this.status = status;
      this.url = url;
      this.body = body ?? {};
    }
  }

  let txn = 0;
  const txnId = () => `stoa-host-${Date.now()}-${txn++}`;
  const enc = encodeURIComponent;

  /** One client-server API request as the user; JSON in and out. */
  async function mx(method, path, body, { base = cfg.hsUrl, signal } = {}) {
    const url = base + path;
    const r = await fetch(url, {
      method,
      headers: {
        Authorization: `Bearer ${cfg.accessToken}`,
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
    const text = await r.text();
    let json;
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      json = { error: text.slice(0, 200) };
    }
    if (!r.ok) throw new MatrixError(r.status, url, json);
    return json;
  }

  const roomPath = (roomId) => `/_matrix/client/v3/rooms/${enc(roomId)}`;

  /** The room's full state, shared by the reads of one push. */
  let stateCache;
  function roomState(roomId) {
    const now = performance.now();
    if (!stateCache || stateCache.roomId !== roomId || now - stateCache.at > 250) {
      stateCache = { roomId, at: now, events: mx('GET', `${roomPath(roomId)}/state`) };
    }
    return stateCache.events;
  }

  const withRoom = (roomId) => (ev) => (ev.room_id ? ev : { ...ev, room_id: roomId });

  // --------------------------------------------------------------- driver

  class Driver extends mxwidgets.WidgetDriver {
    async validateCapabilities(requested) {
      rec.capabilities.requested = [...requested].sort();
      rec.capabilities.approved = [...requested].sort();
      note('validateCapabilities', { requested: requested.size });
      return new Set(requested);
    }

    async sendEvent(eventType, content, stateKey = null, roomId = null) {
      roomId = roomId ?? cfg.roomId;
      const detail = { type: eventType, stateKey: stateKey ?? undefined };
      try {
        let r;
        if (stateKey !== null && stateKey !== undefined) {
          r = await mx('PUT', `${roomPath(roomId)}/state/${enc(eventType)}/${enc(stateKey)}`, content);
        } else {
          r = await mx('PUT', `${roomPath(roomId)}/send/${enc(eventType)}/${enc(txnId())}`, content);
        }
        rec.sentEvents.push({ t: elapsed(), type: eventType, stateKey: stateKey ?? undefined, content });
        note('sendEvent', detail);
        return { roomId, eventId: r.event_id };
      } catch (e) {
        note('sendEvent', detail, false, e);
        throw e;
      }
    }

    async sendStickyEvent(durationMs, eventType) {
      return this.refuse('sendStickyEvent', { type: eventType, durationMs });
    }

    async sendDelayedEvent(delay, eventType, content, stateKey) {
      return this.refuse('sendDelayedEvent', { type: eventType, stateKey, delay });
    }

    async sendDelayedStickyEvent(delay, durationMs, eventType) {
      return this.refuse('sendDelayedStickyEvent', { type: eventType, delay, durationMs });
    }

    async cancelScheduledDelayedEvent(delayId) {
      return this.refuse('cancelScheduledDelayedEvent', { delayId });
    }

    async restartScheduledDelayedEvent(delayId) {
      return this.refuse('restartScheduledDelayedEvent', { delayId });
    }

    async sendScheduledDelayedEvent(delayId) {
      return this.refuse('sendScheduledDelayedEvent', { delayId });
    }

    /** Dendrite v0.13.8 has no MSC4140 delayed or MSC4354 sticky events. */
    refuse(call, detail) {
      const e = new MatrixError(404, `${cfg.hsUrl}/(unsupported)`, {
        errcode: 'M_UNRECOGNIZED',
        error: `${call}: not supported by this homeserver`,
      });
      note(call, detail, false, e);
      throw e;
    }

    async sendToDevice(eventType, encrypted, contentMap) {
      const recipients = Object.entries(contentMap).map(([u, d]) => `${u}:${Object.keys(d).join(',')}`);
      const detail = { type: eventType, encrypted, recipients };
      try {
        // The room is not encrypted, so Element Call sends no keys; an
        // "encrypted" message would need the host's Olm sessions, which this
        // host does not have. It is sent as is and recorded.
        await mx('PUT', `/_matrix/client/v3/sendToDevice/${enc(eventType)}/${enc(txnId())}`, { messages: contentMap });
        rec.toDevice.push({ t: elapsed(), type: eventType, encrypted, recipients });
        note('sendToDevice', detail);
      } catch (e) {
        note('sendToDevice', detail, false, e);
        throw e;
      }
    }

    async readRoomState(roomId, eventType, stateKey) {
      const detail = { type: eventType, stateKey };
      try {
        const all = await roomState(roomId);
        const out = all
          .filter((ev) => ev.type === eventType && (stateKey === undefined || ev.state_key === stateKey))
          .map(withRoom(roomId));
        note('readRoomState', { ...detail, events: out.length });
        return out;
      } catch (e) {
        note('readRoomState', detail, false, e);
        throw e;
      }
    }

    async readRoomTimeline(roomId, eventType, msgtype, stateKey, limit, since) {
      const detail = { type: eventType, msgtype, stateKey, limit, since };
      try {
        const n = Math.min(Math.max(limit || 50, 1), 100);
        const r = await mx('GET', `${roomPath(roomId)}/messages?dir=b&limit=${n}`);
        const out = [];
        for (const ev of r.chunk ?? []) {
          if (since !== undefined && ev.event_id === since) break;
          if (ev.type !== eventType) continue;
          if (msgtype !== undefined && ev.content?.msgtype !== msgtype) continue;
          if (stateKey !== undefined && ev.state_key !== stateKey) continue;
          out.push(withRoom(roomId)(ev));
          if (out.length >= n) break;
        }
        note('readRoomTimeline', { ...detail, events: out.length });
        return out;
      } catch (e) {
        note('readRoomTimeline', detail, false, e);
        throw e;
      }
    }

    // Before MSC2762's update_state, widgets read through these two.
    async readRoomEvents(eventType, msgtype, limit, roomIds, since) {
      const rooms = roomIds ?? [cfg.roomId];
      const lists = await Promise.all(rooms.map((r) => this.readRoomTimeline(r, eventType, msgtype, undefined, limit, since)));
      return lists.flat();
    }

    async readStateEvents(eventType, stateKey, limit, roomIds) {
      const rooms = roomIds ?? [cfg.roomId];
      const lists = await Promise.all(rooms.map((r) => this.readRoomState(r, eventType, stateKey)));
      return lists.flat().slice(0, limit > 0 ? limit : undefined);
    }

    async readStickyEvents(roomId) {
      note('readStickyEvents', { roomId });
      return [];
    }

    async readRoomAccountData() {
      return [];
    }

    askOpenID(observer) {
      mx('POST', `/_matrix/client/v3/user/${enc(cfg.userId)}/openid/request_token`, {})
        .then((tok) => {
          note('askOpenID', { matrix_server_name: tok.matrix_server_name, expires_in: tok.expires_in });
          observer.update({ state: mxwidgets.OpenIDRequestState.Allowed, token: tok });
        })
        .catch((e) => {
          note('askOpenID', {}, false, e);
          observer.update({ state: mxwidgets.OpenIDRequestState.Blocked });
        });
    }

    async getRtcTransports() {
      try {
        const r = await mx('GET', '', undefined, { base: cfg.transportsUrl });
        note('getRtcTransports', r);
        return r;
      } catch (e) {
        note('getRtcTransports', {}, false, e);
        throw e;
      }
    }

    async getRtcLivekitToken(data) {
      // MSC4533's homeserver endpoint: Dendrite has none.
      return this.refuse('getRtcLivekitToken', { slot: data?.slot_id });
    }

    async delegateRtcLivekitDelayedLeave() {
      return this.refuse('delegateRtcLivekitDelayedLeave', {});
    }

    async *getTurnServers() {
      // Loopback needs no TURN, and a listed server would be tried
      // (TESTENV.md): none is given.
      note('getTurnServers', {});
    }

    async navigate(uri) {
      note('navigate', { uri });
    }

    async getMediaConfig() {
      return mx('GET', '/_matrix/client/v1/media/config').catch(() => ({}));
    }

    getKnownRooms() {
      return [cfg.roomId];
    }

    processError(error) {
      if (!(error instanceof MatrixError)) return undefined;
      return {
        matrix_api_error: {
          http_status: error.status,
          http_headers: {},
          url: error.url,
          response: { errcode: error.body.errcode ?? 'M_UNKNOWN', error: error.body.error ?? error.message },
        },
      };
    }
  }

  // ------------------------------------------------------------------ sync

  let stopped = false;
  let api;
  let syncAbort;

  /** Follows the room and feeds what is new to the widget. */
  async function syncLoop(firstSince) {
    let since = firstSince;
    const filter = JSON.stringify({
      room: { rooms: [cfg.roomId], timeline: { limit: 50 }, account_data: { types: [] }, ephemeral: { types: [] } },
      presence: { types: [] },
      account_data: { types: [] },
    });
    while (!stopped) {
      syncAbort = new AbortController();
      try {
        const q = new URLSearchParams({ filter, timeout: '10000', since });
        const r = await mx('GET', `/_matrix/client/v3/sync?${q}`, undefined, { signal: syncAbort.signal });
        rec.syncs++;
        since = r.next_batch;
        feed(r);
      } catch (e) {
        if (stopped) return;
        rec.syncErrors++;
        note('sync', {}, false, e);
        await new Promise((res) => setTimeout(res, 1000));
      }
    }
  }

  function feed(r) {
    if (!api || stopped) return;
    const swallow = (what) => (e) => console.warn(`[host] ${what}: ${e?.message ?? e}`);
    const room = r.rooms?.join?.[cfg.roomId];
    if (room) {
      for (const ev of room.state?.events ?? []) {
        rec.fed.state++;
        api.feedStateUpdate(withRoom(cfg.roomId)(ev)).catch(swallow('feedStateUpdate'));
      }
      for (const raw of room.timeline?.events ?? []) {
        const ev = withRoom(cfg.roomId)(raw);
        rec.fed.timeline++;
        api.feedEvent(ev).catch(swallow('feedEvent'));
        if (ev.state_key !== undefined) {
          rec.fed.state++;
          api.feedStateUpdate(ev).catch(swallow('feedStateUpdate'));
        }
      }
    }
    for (const ev of r.to_device?.events ?? []) {
      rec.fed.toDevice++;
      api.feedToDevice(ev, false).catch(swallow('feedToDevice'));
    }
  }

  // ---------------------------------------------------------------- widget

  /** Element Call's URL, with the parameters Element Web passes (Call.ts). */
  function widgetUrl() {
    const params = new URLSearchParams({
      widgetId: cfg.widgetId,
      parentUrl: window.location.href,
      roomId: cfg.roomId,
      userId: cfg.userId,
      deviceId: cfg.deviceId,
      baseUrl: cfg.hsUrl,
      intent: cfg.intent,
      confineToRoom: 'true',
      skipLobby: 'false',
      returnToLobby: 'false',
      preload: 'false',
      perParticipantE2EE: 'false',
      header: 'none',
      lang: 'en',
      fontScale: '1',
      sendNotificationType: 'notification',
    });
    return `${window.location.origin}${cfg.ecPath}#?${params}`;
  }

  // Actions Element Call sends that ClientWidgetApi leaves to the client:
  // acknowledge them, as Element Web does.
  const ACKED = [
    'io.element.join',
    'im.vector.hangup',
    'io.element.close',
    'io.element.device_mute',
    'set_always_on_screen',
    'io.element.tile_layout',
    'io.element.spotlight_layout',
    'im.vector.fullscreen',
  ];

  async function start() {
    // A first sync gives the point from which events are new; the room's
    // state up to there reaches the widget through readRoomState.
    const first = await mx('GET', `/_matrix/client/v3/sync?${new URLSearchParams({
      filter: JSON.stringify({ room: { rooms: [cfg.roomId], timeline: { limit: 1 } }, presence: { types: [] } }),
      timeout: '0',
    })}`);

    const url = widgetUrl();
    const widget = new mxwidgets.Widget({
      id: cfg.widgetId,
      creatorUserId: cfg.userId,
      type: 'm.call',
      name: 'Element Call',
      url,
      waitForIframeLoad: false,
      data: {},
    });
    const iframe = document.createElement('iframe');
    iframe.title = 'Element Call';
    iframe.allow = 'camera; microphone; display-capture; autoplay; clipboard-write; fullscreen';
    iframe.src = url;
    document.body.append(iframe);

    api = new mxwidgets.ClientWidgetApi(widget, iframe, new Driver());
    // Record every action the widget sends.
    const emit = api.emit.bind(api);
    api.emit = (name, ...args) => {
      if (typeof name === 'string' && name.startsWith('action:')) {
        const action = name.slice('action:'.length);
        rec.actions[action] = (rec.actions[action] ?? 0) + 1;
      }
      return emit(name, ...args);
    };
    for (const action of ACKED) {
      api.on(`action:${action}`, (ev) => {
        ev.preventDefault();
        if (action === 'io.element.join') rec.joinedAction = true;
        if (action === 'im.vector.hangup') rec.hangupAction = true;
        note('action', { action, data: action === 'io.element.device_mute' ? ev.detail.data : undefined });
        api.transport.reply(ev.detail, action === 'set_always_on_screen' ? { success: true } : {});
      });
    }
    api.on('ready', () => {
      rec.phase = 'ready';
      note('ready', { approved: rec.capabilities.approved.length });
    });
    api.on('error:preparing', (e) => {
      rec.phase = 'failed';
      rec.error = `widget preparation failed: ${e?.message ?? e}`;
    });
    api.setViewedRoomId(cfg.roomId);
    rec.phase = 'loading';
    syncLoop(first.next_batch);
  }

  window.ecHost = {
    state: () => JSON.parse(JSON.stringify({ ...rec, elapsedMs: elapsed() })),
    stop: () => {
      stopped = true;
      syncAbort?.abort();
      api?.stop();
    },
  };

  start().catch((e) => {
    rec.phase = 'failed';
    rec.error = `host start: ${e?.message ?? e}`;
    console.error(`[host] ${rec.error}`);
  });
})();
