// The JSON API client and the signed-in state, in memory only: the session
// token lives in this module (never in localStorage, sessionStorage or a
// cookie), so reloading the page logs out.

/** The signed-in state: the bearer token and GET /me's answer. */
export const state = {
  session: null,
  account: null,
};

let sessionEnded = () => {};

/** What to do when the server says the session is gone (401 unauthorized). */
export function onSessionEnded(handler) {
  sessionEnded = handler;
}

/** Calls the API; never throws. Resolves to {ok, status, data, retryAfter}. */
export async function api(method, path, body, token) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = 'Bearer ' + token;
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (e) {
    return {
      ok: false,
      status: 0,
      data: { code: 'network', detail: 'Could not reach the server. Check your connection and try again.' },
    };
  }
  const retryAfter = parseInt(resp.headers.get('Retry-After') || '', 10);
  let data = null;
  const type = resp.headers.get('Content-Type') || '';
  if (type.startsWith('application/json')) {
    try { data = await resp.json(); } catch (e) { data = null; }
  } else if (resp.status !== 204) {
    data = await resp.blob();
  }
  if (!resp.ok && (data === null || typeof data.code !== 'string')) {
    data = { code: 'http_' + resp.status, detail: 'The server answered ' + resp.status + '.' };
  }
  return { ok: resp.ok, status: resp.status, data, retryAfter: Number.isFinite(retryAfter) ? retryAfter : null };
}

/**
 * Calls the API with the session token. When the session is gone (ended
 * elsewhere, expired, or by a password change in another browser) the page
 * goes back to the login; the caller sees `ended: true` and does nothing.
 */
export async function authed(method, path, body) {
  const token = state.session;
  if (!token) return { ok: false, status: 401, ended: true, data: { code: 'unauthorized', detail: '' } };
  const r = await api(method, path, body, token);
  if (r.status === 401 && r.data && r.data.code === 'unauthorized') {
    if (state.session === token) sessionEnded();
    return { ...r, ended: true };
  }
  return r;
}
