// The links API of the Stoa server that serves this page (web/api.go):
//
//   GET  /api/links/{slug}       what the link grants, or why it is refused
//   POST /api/links/{slug}/join  {"name"} -> a guest access token
//
// Errors are JSON {"error": code, "message": text}. The E2EE key in the
// URL fragment is never part of any request.

/** What a link grants, before the guest gives a name. */
export interface LinkInfo {
  room: string;
  expires_at: string;
  view_only: boolean;
  e2ee: boolean;
  require_approval?: boolean;
}

/** A guest's way in: livekit-client's room.connect(url, token). */
export interface JoinGrant {
  url: string;
  token: string;
  identity?: string;
  name?: string;
  room: string;
  view_only: boolean;
  e2ee: boolean;
}

/**
 * A refused or failed API request. code is the API's error code, or
 * "unreachable" when no answer came, or "bad_answer" when the answer was not
 * the API's.
 */
export class APIError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 0,
    readonly retryAfter = 0,
  ) {
    super(message);
    this.name = 'APIError';
  }
}

/** How long one API request may take before the page gives up. */
const requestTimeoutMs = 15_000;

/** The slug of the link this page was opened with: /j/{slug}. */
export function slugFromPath(pathname: string): string {
  const m = /\/j\/([^/]+)\/?$/.exec(pathname);
  return m ? decodeURIComponent(m[1]) : '';
}

/** The E2EE key from the URL fragment (#key=...), or "". */
export function keyFromHash(hash: string): string {
  const params = new URLSearchParams(hash.replace(/^#/, ''));
  return params.get('key') ?? '';
}

// The API is reached relative to the page (/j/{slug} -> /api/links/...), so
// that Stoa works behind a reverse proxy that mounts it under a path prefix.
function apiURL(slug: string, suffix = ''): string {
  return new URL(`../api/links/${encodeURIComponent(slug)}${suffix}`, document.baseURI).toString();
}

async function call<T>(url: string, init: RequestInit): Promise<T> {
  let resp: Response;
  try {
    resp = await fetch(url, {
      ...init,
      cache: 'no-store',
      credentials: 'omit',
      signal: AbortSignal.timeout(requestTimeoutMs),
    });
  } catch (e) {
    throw new APIError('unreachable', e instanceof Error ? e.message : String(e));
  }
  let body: any;
  try {
    body = await resp.json();
  } catch {
    body = undefined;
  }
  if (resp.ok && body && typeof body === 'object') return body as T;
  if (body && typeof body.error === 'string') {
    const retry = Number(resp.headers.get('Retry-After') ?? 0) || 0;
    throw new APIError(body.error, String(body.message ?? body.error), resp.status, retry);
  }
  throw new APIError(
    resp.status >= 500 ? 'unreachable' : 'bad_answer',
    `HTTP ${resp.status} ${resp.statusText}`,
    resp.status,
  );
}

/** Asks what the link grants. */
export function linkInfo(slug: string): Promise<LinkInfo> {
  return call<LinkInfo>(apiURL(slug), { method: 'GET' });
}

/** Asks for an access token to join as name. */
export async function joinLink(slug: string, name: string): Promise<JoinGrant> {
  const grant = await call<JoinGrant>(apiURL(slug, '/join'), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ name }),
  });
  if (typeof grant.url !== 'string' || typeof grant.token !== 'string') {
    throw new APIError('bad_answer', 'the join answer has no url or token');
  }
  return grant;
}
