// The account page: what GET /me says, two-step verification on and off,
// recovery codes (count and a new set), the password, the sessions, and
// the notices after a sign-in (few recovery codes left, a phone clock off).
import { api, authed, onSessionEnded, state } from './api.js';
import { clearDevices, loadDevices } from './devices.js';
import { startEnrollment } from './enroll.js';
import {
  $, clearErrors, codesPanel, factList, flash, notice, onClick, onSubmit, resetForm, show, showError,
  timeElement, value,
} from './ui.js';

let forgetNewCodes = null; // clears the new recovery codes from the page

export async function signedIn(token) {
  state.session = token;
  await loadAccount();
}

/** Back to the login; everything of the account is dropped from the page. */
export function signedOut(message) {
  state.session = null;
  state.account = null;
  clearAccountPage();
  notice([]);
  if (location.hash) history.replaceState(null, '', location.pathname);
  show('login', 'login-username');
  flash(message || '');
}

onSessionEnded(() => signedOut('Your session ended (you logged out elsewhere, or the password was changed). Log in again.'));

/** GET /me and the facts it gives; false when the session is gone. */
export async function refreshMe() {
  const r = await authed('GET', '/me');
  if (r.ended) return false;
  if (!r.ok) {
    signedOut(r.data.detail);
    return false;
  }
  state.account = r.data;
  const mfa = r.data.mfa_enabled;
  $('account-username').textContent = r.data.username;
  $('account-mfa').textContent = mfa ? 'On' : 'Off';
  const left = r.data.recovery_codes_remaining;
  $('recovery-count').textContent = typeof left === 'number'
    ? (left === 0 ? 'You have no unused recovery codes left.' : 'You have ' + left + ' unused recovery code' + (left === 1 ? '' : 's') + '.')
    : '';
  $('recovery-count').classList.toggle('low', typeof left === 'number' && left <= 2);
  for (const id of ['devices', 'recovery', 'disable-form']) $(id).hidden = !mfa;
  $('enable-form').hidden = mfa;
  $('password-token-field').hidden = !mfa;
  return true;
}

export async function loadAccount() {
  clearAccountPage();
  if (!(await refreshMe())) return;
  if (location.hash) history.replaceState(null, '', location.pathname);
  show('account');
  await Promise.all([state.account.mfa_enabled ? loadDevices() : null, loadSessions()]);
}

function clearAccountPage() {
  for (const id of ['disable-form', 'enable-form', 'recovery-form', 'password-form']) resetForm($(id));
  setOpen('recovery', false);
  setOpen('password', false);
  hideNewCodes();
  clearDevices();
  $('sessions-list').replaceChildren();
  for (const id of ['recovery-status', 'password-status', 'sessions-status', 'sessions-error']) $(id).textContent = '';
}

/** The notices of a /login-2fa answer: few recovery codes, the clock. */
export function signInNotices(data) {
  const lines = [];
  const left = data.recovery_codes_remaining;
  if (data.warning) {
    lines.push(typeof left === 'number'
      ? 'Only ' + left + ' recovery code' + (left === 1 ? '' : 's') + ' left. Make a new set under “Recovery codes” below.'
      : data.warning);
  }
  const drift = data.clock_drift_seconds;
  if (typeof drift === 'number' && drift !== 0) {
    lines.push('Your phone\'s clock is about ' + Math.abs(drift) + ' s ' + (drift > 0 ? 'fast' : 'slow') +
      '. The code worked, but set the phone to take its time from the network so codes keep working.');
  }
  notice(lines);
}

// ---- two-step verification on and off -------------------------------------------------
onSubmit('disable-form', async (form) => {
  clearErrors(form);
  flash('');
  const r = await authed('POST', '/disable-mfa', {
    username: state.account.username,
    password: value(form, 'password'),
    token: value(form, 'token').trim(),
  });
  if (!r.ok) {
    showError(form, r, {
      invalid_credentials: ['password', 'Wrong password.'],
      invalid_otp: ['token', 'That code is not right. Type the code your app shows now, or a recovery code.'],
    });
    return;
  }
  notice([]);
  await loadAccount();
  flash('Two-step verification is off.');
});

onSubmit('enable-form', async (form) => {
  clearErrors(form);
  flash('');
  const password = value(form, 'password');
  const r = await authed('POST', '/enable-mfa', { username: state.account.username, password });
  if (!r.ok) {
    showError(form, r, { invalid_credentials: ['password', 'Wrong password.'] });
    return;
  }
  await startEnrollment(state.account.username, password, r.data, state.session);
});

onClick('logout', async () => {
  const r = await api('POST', '/logout', undefined, state.session);
  signedOut(r.ok || r.status === 401 ? 'You are logged out.' : 'You are logged out on this page.');
});

// ---- forms behind a button -------------------------------------------------------------
/** Shows or hides `name`-form, the button `name`-open saying which. */
function setOpen(name, open) {
  const form = $(name + '-form');
  form.hidden = !open;
  $(name + '-open').setAttribute('aria-expanded', String(open));
  if (open) {
    resetForm(form);
    const first = form.querySelector('input:not([hidden])');
    if (first) first.focus();
  }
}

for (const name of ['recovery', 'password']) {
  onClick(name + '-open', () => {
    $(name + '-status').textContent = '';
    if (name === 'recovery') hideNewCodes();
    setOpen(name, $(name + '-form').hidden);
  });
  onClick(name + '-cancel', () => {
    setOpen(name, false);
    $(name + '-open').focus();
  });
}

// ---- recovery codes ----------------------------------------------------------------------
onSubmit('recovery-form', async (form) => {
  clearErrors(form);
  const r = await authed('POST', '/me/recovery-codes', {
    password: value(form, 'password'),
    token: value(form, 'token').trim(),
  });
  if (!r.ok) {
    showError(form, r, {
      invalid_credentials: ['password', 'Wrong password.'],
      invalid_otp: ['token', 'That code is not right. Type the code your app shows now (not a recovery code).'],
      mfa_disabled: [null, 'Two-step verification is off: there are no recovery codes.'],
    });
    return;
  }
  setOpen('recovery', false);
  forgetNewCodes = codesPanel('recovery-codes', r.data.recovery_codes,
    'twofactor-recovery-codes-' + state.account.username + '.txt');
  $('recovery-new').hidden = false;
  $('recovery-open').hidden = true;
  $('recovery-new-title').focus();
  await refreshMe();
  notice([]);
});

function hideNewCodes() {
  if (forgetNewCodes) forgetNewCodes();
  forgetNewCodes = null;
  $('recovery-new').hidden = true;
  $('recovery-open').hidden = false;
}

onClick('recovery-done', () => {
  hideNewCodes();
  $('recovery-status').textContent = 'Your new recovery codes are in use; the old ones no longer work.';
  $('recovery-open').focus();
});

// ---- password ------------------------------------------------------------------------------
onSubmit('password-form', async (form) => {
  clearErrors(form);
  const body = {
    current_password: value(form, 'current_password'),
    new_password: value(form, 'new_password'),
  };
  if (state.account.mfa_enabled) body.token = value(form, 'token').trim();
  const r = await authed('POST', '/change-password', body);
  if (!r.ok) {
    showError(form, r, {
      invalid_credentials: ['current_password', 'Wrong password.'],
      weak_password: ['new_password', r.data.detail],
      invalid_otp: ['token', 'That code is not right. Type the code your app shows now, or a recovery code.'],
    });
    return;
  }
  setOpen('password', false);
  const n = r.data.sessions_ended;
  $('password-status').textContent = 'Your password is changed. ' + (n === 0
    ? 'No other session was open.'
    : n + ' other session' + (n === 1 ? ' was' : 's were') + ' ended.');
  $('password-open').focus();
  await Promise.all([loadSessions(), refreshMe()]);
});

// ---- sessions --------------------------------------------------------------------------------
export async function loadSessions() {
  const r = await authed('GET', '/me/sessions');
  if (r.ended) return;
  if (!r.ok) {
    $('sessions-error').textContent = 'Your sessions could not be loaded: ' + r.data.detail;
    return;
  }
  $('sessions-error').textContent = '';
  $('sessions-list').replaceChildren(...r.data.sessions.map(sessionItem));
}

function sessionItem(s) {
  const li = document.createElement('li');
  li.className = 'card' + (s.current ? ' current' : '');
  li.dataset.id = s.id;
  const head = document.createElement('div');
  head.className = 'card-head';
  const title = document.createElement('h3');
  title.className = 'card-title';
  title.textContent = browserName(s.user_agent);
  head.append(title);
  if (s.current) {
    const tag = document.createElement('span');
    tag.className = 'tag current';
    tag.textContent = 'This session';
    head.append(tag);
  }
  li.append(head);
  li.append(factList([
    ['Signed in', timeElement(s.created_at)],
    ['Expires', timeElement(s.expires_at)],
    ['Address', s.client_addr || 'Unknown'],
    ['Browser', s.user_agent || 'Unknown'],
  ]));
  if (!s.current) {
    const end = document.createElement('button');
    end.type = 'button';
    end.className = 'end-session';
    end.textContent = 'End session';
    end.setAttribute('aria-label', 'End session: ' + title.textContent + ' from ' + (s.client_addr || 'an unknown address'));
    end.addEventListener('click', () => endSession(s, end));
    li.append(end);
  }
  return li;
}

/** A short name for a user agent: "Chrome on Linux", or its first word. */
function browserName(agent) {
  if (!agent) return 'Unknown browser';
  const browsers = [['Edg/', 'Edge'], ['Firefox/', 'Firefox'], ['Chrome/', 'Chrome'], ['Safari/', 'Safari']];
  const systems = [['Android', 'Android'], ['iPhone', 'iPhone'], ['iPad', 'iPad'], ['Windows', 'Windows'],
    ['Mac OS', 'macOS'], ['Linux', 'Linux']];
  const b = browsers.find(([k]) => agent.includes(k));
  const o = systems.find(([k]) => agent.includes(k));
  if (!b) return agent.split(/[\s/]/)[0] || 'Unknown browser';
  return b[1] + (o ? ' on ' + o[1] : '');
}

async function endSession(s, button) {
  button.disabled = true;
  $('sessions-status').textContent = '';
  $('sessions-error').textContent = '';
  const r = await authed('DELETE', '/me/sessions/' + encodeURIComponent(s.id));
  if (r.ended) return;
  if (!r.ok && r.status !== 404) {
    button.disabled = false;
    $('sessions-error').textContent = 'The session could not be ended: ' + r.data.detail;
    return;
  }
  await loadSessions();
  $('sessions-status').textContent = 'The session is ended: that browser is signed out.';
  $('sessions-refresh').focus();
}

onClick('sessions-refresh', async () => {
  $('sessions-status').textContent = '';
  await loadSessions();
  if (state.session) $('sessions-status').textContent = 'The list is up to date.';
});

// A page left open in a background tab learns at once, when shown again,
// that its session was ended elsewhere.
let lastCheck = 0;
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState !== 'visible' || !state.session || Date.now() - lastCheck < 10000) return;
  lastCheck = Date.now();
  authed('GET', '/me');
});
