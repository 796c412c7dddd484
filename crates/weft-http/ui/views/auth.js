// The sign-in form: the token is pasted once, kept in localStorage, and sent as a bearer token.

import { setToken, token } from '../api.js';
import { h } from '../dom.js';

export function signInView({ reason, onSignedIn }) {
  const input = h('input', {
    id: 'token-input', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true,
    placeholder: 'weft_…', 'aria-describedby': 'token-help',
  });
  const error = h('p', { class: 'field-error', role: 'alert', hidden: true });
  const form = h('form', { class: 'card sign-in', id: 'sign-in-form', 'aria-labelledby': 'sign-in-title', onsubmit: (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) {
      error.hidden = false;
      error.textContent = 'Paste a token first.';
      return;
    }
    setToken(value);
    onSignedIn?.();
  } },
  h('h1', { id: 'sign-in-title' }, 'Sign in'),
  reason ? h('p', { class: 'notice warn', role: 'alert' }, token() ? `Your token was not accepted: ${reason}.` : `Sign in to see this: ${reason}.`) : null,
  h('label', { for: 'token-input' }, 'API token'),
  input,
  h('p', { id: 'token-help', class: 'muted' }, 'Ask an administrator for a token (weft token create --principal NAME). It is kept in this browser only and sent with every request.'),
  error,
  h('button', { type: 'submit', class: 'primary' }, 'Sign in'));
  queueMicrotask(() => input.focus());
  return form;
}
