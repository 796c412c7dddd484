// The single-page app: routes on the URL fragment (#/products/<id>/schema), renders one view
// into <main>, and owns the header (search box, sign-in state). Each navigation aborts the
// previous view's requests and timers through an AbortSignal.

import { ApiError, clearToken, token } from './api.js';
import { h, notice, replace } from './dom.js';
import { signInView } from './views/auth.js';
import { domainsView, homeView, searchView } from './views/catalog.js';
import { productView, PRODUCT_TABS } from './views/product.js';
import { liveView } from './views/live.js';

const main = document.getElementById('main');
const authState = document.getElementById('auth-state');
const searchForm = document.getElementById('search-form');
const searchInput = document.getElementById('search-input');

let current = null;

/** Parses "#/a/b?x=1" into segments and query parameters. */
function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = raw.split('?');
  const segments = path.split('/').filter(Boolean).map((part) => {
    try {
      return decodeURIComponent(part);
    } catch {
      return part;
    }
  });
  return { segments, params: new URLSearchParams(query) };
}

/** Shows an error the way a person needs it: sign in, not allowed, or what went wrong. */
export function showError(target, error) {
  if (error?.name === 'AbortError') return;
  if (error instanceof ApiError && error.needsSignIn) {
    replace(target, signInView({ reason: error.message, onSignedIn: route }));
    return;
  }
  if (error instanceof ApiError && error.forbidden) {
    replace(target, notice('forbidden', 'You may not see this',
      h('p', null, error.message || 'your token does not allow this'),
      h('p', null, h('a', { href: '#/sign-in' }, token() ? 'Sign in with another token' : 'Sign in'), ' to see it.')));
    return;
  }
  if (error instanceof ApiError) {
    replace(target, notice('error', error.status === 404 ? 'Not found' : 'Something went wrong',
      h('p', null, error.message), h('p', { class: 'muted' }, h('code', null, error.code))));
    return;
  }
  // A bug in the UI itself: say so without a stack trace.
  console.error(error);
  replace(target, notice('error', 'Something went wrong', h('p', null, 'The page could not be shown. Reload to try again.')));
}

async function route() {
  current?.abort();
  const controller = new AbortController();
  current = controller;
  const { signal } = controller;
  const { segments, params } = parseHash();
  const ctx = { signal, showError: (target, error) => showError(target, error) };
  updateNav(segments);
  if (segments[0] !== 'search') searchInput.value = '';
  replace(main, h('p', { class: 'loading', role: 'status' }, 'Loading…'));
  try {
    const [first, second, third] = segments;
    if (!first) await homeView(main, ctx);
    else if (first === 'search') {
      searchInput.value = params.get('q') ?? '';
      await searchView(main, params, ctx);
    } else if (first === 'domains') await domainsView(main, ctx);
    else if (first === 'products' && second) {
      const tab = PRODUCT_TABS.some((t) => t.id === third) ? third : 'overview';
      await productView(main, second, tab, params, ctx);
    } else if (first === 'streams' && second && third === 'live') await liveView(main, second, params, ctx);
    else if (first === 'sign-in') replace(main, signInView({ onSignedIn: () => { location.hash = '#/'; } }));
    else replace(main, notice('error', 'Not found', h('p', null, 'There is no such page. '), h('a', { href: '#/' }, 'Go to the catalog')));
  } catch (error) {
    if (!signal.aborted) showError(main, error);
  }
}

function updateNav(segments) {
  for (const link of document.querySelectorAll('.site-nav a')) {
    const target = link.getAttribute('href').replace(/^#\/?/, '');
    const active = (target === '' && (segments.length === 0 || segments[0] === 'products')) || (target && segments[0] === target);
    if (active) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

function renderAuthState() {
  if (token()) {
    replace(authState,
      h('span', { class: 'signed-in', title: 'Signed in: a token is stored in this browser' }, h('span', { class: 'signed-in-text' }, 'Signed in')),
      h('button', { type: 'button', class: 'link-button', id: 'sign-out', onclick: () => {
        clearToken();
        // Forget whatever the previous token could see.
        replace(main);
        route();
      } }, 'Sign out'));
  } else {
    replace(authState, h('a', { href: '#/sign-in', class: 'button-link', id: 'sign-in-link' }, 'Sign in'));
  }
}

searchForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const q = searchInput.value.trim();
  location.hash = `#/search?${new URLSearchParams({ q })}`;
});

window.addEventListener('hashchange', () => {
  route();
  main.focus({ preventScroll: true });
  window.scrollTo(0, 0);
});
window.addEventListener('weft:auth', renderAuthState);
window.addEventListener('storage', (event) => {
  if (event.key === 'weft.token') {
    renderAuthState();
    route();
  }
});
window.addEventListener('unhandledrejection', (event) => {
  // Keep stack traces out of the page; they stay in the console for developers.
  event.preventDefault();
  console.error(event.reason);
});

renderAuthState();
route();
