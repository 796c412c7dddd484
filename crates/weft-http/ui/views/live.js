// A live tail of one stream: events as they are produced, newest first, with pause and resume.
// It reads Server-Sent Events with fetch() so the bearer token goes along; resuming sends
// Last-Event-ID so nothing produced while paused is skipped.

import { followSse, seg } from '../api.js';
import { h, replace } from '../dom.js';
import { time } from '../format.js';
import { jsonView } from '../json-view.js';

/** Events kept on screen; older ones are dropped from the page. */
const SHOWN_EVENTS_MAX = 200;
/** Wait before reconnecting after the stream drops. */
const RECONNECT_MS = 2000;

export async function liveView(main, stream, params, ctx) {
  const product = params.get('product');
  replace(main,
    h('header', { class: 'product-head' },
      h('p', { class: 'breadcrumbs' }, h('a', { href: '#/' }, 'Products'), product ? [' / ', h('a', { href: `#/products/${seg(product)}` }, product)] : null),
      h('h1', null, 'Live tail ', h('code', null, stream))));
  const box = h('div');
  main.append(box);
  liveTail(box, stream, params, ctx);
}

export function liveTail(box, stream, params, { signal, showError }) {
  let paused = false;
  let lastEventId = null;
  let connection = null;
  let n = 0;
  const from = params.get('from') === 'earliest' ? 'earliest' : 'latest';
  const status = h('span', { class: 'live-status', role: 'status', 'data-state': 'connecting' }, 'Connecting…');
  const counter = h('span', { class: 'muted', id: 'live-count' }, '0 events');
  const list = h('ol', { class: 'live-events', 'aria-live': 'off', 'aria-label': `Events on ${stream}` });
  const pause = h('button', { type: 'button', id: 'live-pause', class: 'secondary', 'aria-pressed': 'false', onclick: () => {
    paused = !paused;
    pause.textContent = paused ? 'Resume' : 'Pause';
    pause.setAttribute('aria-pressed', String(paused));
    if (paused) {
      connection?.abort();
      setStatus('paused', 'Paused');
    } else connect();
  } }, 'Pause');
  const clear = h('button', { type: 'button', class: 'secondary', onclick: () => {
    list.replaceChildren();
    n = 0;
    counter.textContent = '0 events';
  } }, 'Clear');
  const fromLink = h('a', { href: `${location.hash.split('?')[0]}?${new URLSearchParams({ ...Object.fromEntries(params), from: from === 'latest' ? 'earliest' : 'latest' })}` },
    from === 'latest' ? 'Start from the earliest event' : 'Only new events');
  const error = h('div');
  replace(box, h('div', { class: 'card live' },
    h('div', { class: 'live-toolbar' }, status, counter, pause, clear, fromLink),
    error,
    h('p', { class: 'muted small' }, from === 'latest' ? 'Showing events produced from now on, newest first.' : 'Showing every retained event, then new ones, newest first.'),
    list));

  function setStatus(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  function show(message) {
    let envelope;
    try {
      envelope = JSON.parse(message.data);
    } catch {
      envelope = { raw: message.data };
    }
    n += 1;
    counter.textContent = `${n} event${n === 1 ? '' : 's'}`;
    const event = envelope.event ?? {};
    const item = h('li', { class: 'live-event', 'data-id': message.id ?? '' },
      h('div', { class: 'live-meta' },
        h('span', { class: 'mono' }, message.id ?? ''),
        envelope.timestamp ? h('span', null, time(envelope.timestamp)) : null,
        envelope.key != null ? h('span', null, 'key ', h('code', null, String(envelope.key))) : null,
        event.type ? h('span', { class: 'muted' }, event.type) : null),
      jsonView(event.data ?? envelope.raw ?? event));
    list.prepend(item);
    while (list.childElementCount > SHOWN_EVENTS_MAX) list.lastElementChild.remove();
  }

  async function connect() {
    connection?.abort();
    const controller = new AbortController();
    connection = controller;
    const onAbort = () => controller.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    setStatus('connecting', 'Connecting…');
    try {
      await followSse(`/api/v1/streams/${seg(stream)}/live?from=${from}`, {
        signal: controller.signal,
        lastEventId,
        onOpen: () => {
          setStatus('live', 'Live');
          error.replaceChildren();
        },
        onEvent: (message) => {
          if (message.event === 'error') {
            error.replaceChildren(h('p', { class: 'notice error', role: 'alert' }, `The stream stopped: ${message.data}`));
            return;
          }
          if (message.id) lastEventId = message.id;
          show(message);
        },
      });
      if (!controller.signal.aborted) {
        setStatus('connecting', 'Reconnecting…');
        setTimeout(() => !paused && !signal.aborted && connection === controller && connect(), RECONNECT_MS);
      }
    } catch (err) {
      if (controller.signal.aborted) return;
      setStatus('error', 'Disconnected');
      if (err?.status === 401 || err?.status === 403 || err?.status === 404) showError(box, err);
      else {
        error.replaceChildren(h('p', { class: 'notice error', role: 'alert' }, `${err.message}. Retrying…`));
        setTimeout(() => !paused && !signal.aborted && connection === controller && connect(), RECONNECT_MS);
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  connect();
}
