// The API client: every request the UI makes goes through here, so the token, the error
// shape and the "sign in" / "you may not see this" handling live in one place.

const TOKEN_KEY = 'weft.token';
/** Longest wait for one JSON request before the UI says the server is not answering. */
const REQUEST_TIMEOUT_MS = 15000;
/** Largest SSE frame the live tail buffers before it gives up on the stream. */
const SSE_FRAME_CHARS_MAX = 4 * 1024 * 1024;

export function token() {
  try {
    return localStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

export function setToken(value) {
  localStorage.setItem(TOKEN_KEY, value);
  window.dispatchEvent(new Event('weft:auth'));
}

export function clearToken() {
  localStorage.removeItem(TOKEN_KEY);
  window.dispatchEvent(new Event('weft:auth'));
}

/** An error the UI can show: a stable code, a lowercase message, the HTTP status. */
export class ApiError extends Error {
  constructor(status, code, message, path) {
    super(message);
    this.status = status;
    this.code = code;
    this.path = path;
  }
  get needsSignIn() {
    return this.status === 401;
  }
  get forbidden() {
    return this.status === 403;
  }
  get routeMissing() {
    return this.status === 404 && this.code === 'request.route_not_found';
  }
}

function headers(extra = {}) {
  const h = { Accept: 'application/json', ...extra };
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON (a proxy's error page, say): fall through to a generic message.
  }
  const e = body && typeof body === 'object' ? body.error : null;
  if (e && typeof e.code === 'string') {
    return new ApiError(response.status, e.code, String(e.message ?? ''), e.path);
  }
  return new ApiError(response.status, `http.${response.status}`, `the server answered ${response.status} ${response.statusText}`.trim());
}

/** GET a JSON document from the API. Throws ApiError. */
export async function getJson(path, { signal } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException('timeout', 'TimeoutError')), REQUEST_TIMEOUT_MS);
  const onAbort = () => controller.abort(signal.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  let response;
  try {
    response = await fetch(path, { headers: headers(), signal: controller.signal, cache: 'no-store' });
  } catch (error) {
    if (signal?.aborted) throw error;
    if (error?.name === 'TimeoutError' || controller.signal.reason?.name === 'TimeoutError') {
      throw new ApiError(0, 'ui.timeout', 'the server did not answer in time');
    }
    throw new ApiError(0, 'ui.unreachable', 'cannot reach the Weft server');
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
  if (!response.ok) throw await errorFrom(response);
  try {
    return await response.json();
  } catch {
    throw new ApiError(response.status, 'ui.malformed_response', 'the server sent a response the UI cannot read');
  }
}

/** Percent-encodes one path segment (product ids are URNs with colons). */
export const seg = (text) => encodeURIComponent(text);

/**
 * Follows a Server-Sent Events stream with fetch(), so the Authorization header goes along
 * (EventSource cannot send one). Calls onEvent({id, event, data}) per message, onOpen() once
 * the response arrives. Resolves when the stream ends; rejects with ApiError on an error status.
 */
export async function followSse(path, { signal, lastEventId, onOpen, onEvent }) {
  const extra = { Accept: 'text/event-stream' };
  if (lastEventId) extra['Last-Event-ID'] = lastEventId;
  let response;
  try {
    response = await fetch(path, { headers: headers(extra), signal, cache: 'no-store' });
  } catch (error) {
    if (signal?.aborted) throw error;
    throw new ApiError(0, 'ui.unreachable', 'cannot reach the Weft server');
  }
  if (!response.ok) throw await errorFrom(response);
  onOpen?.();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    // Axum ends lines with \n; normalise CRLF and CR so a proxy that rewrites them still parses.
    buffer += value.replace(/\r\n?/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const message = parseFrame(frame);
      if (message) onEvent(message);
    }
    if (buffer.length > SSE_FRAME_CHARS_MAX) throw new ApiError(0, 'ui.frame_too_large', 'the live stream sent a message too large to show');
  }
}

function parseFrame(frame) {
  let id = null;
  let event = 'message';
  const data = [];
  for (const line of frame.split('\n')) {
    if (!line || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'id') id = value;
    else if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  if (data.length === 0) return null;
  return { id, event, data: data.join('\n') };
}
