// twofactor web front end: a client of the JSON API, served by the same
// binary. No framework, no build step, no network beyond this origin. ES
// modules, by concern:
//
//   api.js      the API client and the signed-in state (memory only)
//   ui.js       views, messages, errors beside their fields, lockouts
//   enroll.js   setting up the first authenticator app
//   account.js  the account page: recovery codes, password, sessions
//   devices.js  the account's authenticator apps
//   app.js      (this) log in, the second step, sign up, the start
//
// The session token lives in a variable only (never in localStorage,
// sessionStorage or a cookie): reloading the page logs out.
import { api, state } from './api.js';
import { signInNotices, signedIn } from './account.js';
import { finishEnrollment, startEnrollment } from './enroll.js';
import {
  $, clearErrors, flash, formError, notice, onClick, onSubmit, show, showError, value,
} from './ui.js';

let pending = null; // second step: {username, mfaToken}

function routeFromHash() {
  // Only the public pages have addresses; the others need state.
  if (location.hash === '#signup') {
    resetSecondStep();
    finishEnrollment();
    show('signup', 'signup-username');
  } else if (state.session && state.account) {
    show('account');
  } else {
    resetSecondStep();
    finishEnrollment();
    show('login', 'login-username');
  }
}

// ---- log in ---------------------------------------------------------------------
onSubmit('login-form', async (form) => {
  clearErrors(form);
  flash('');
  notice([]);
  const username = value(form, 'username').trim();
  const password = value(form, 'password');
  const r = await api('POST', '/login', { username, password });
  if (!r.ok) {
    showError(form, r, { invalid_credentials: ['password', 'Wrong username or password.'] });
    return;
  }
  form.reset();
  if (r.data.mfa_required) {
    pending = { username, mfaToken: r.data.mfa_token };
    $('second-username').textContent = username;
    show('second', 'second-token');
  } else {
    await signedIn(r.data.token);
  }
});

// ---- second step --------------------------------------------------------------------
let recoveryMode = false;

function setRecoveryMode(on) {
  recoveryMode = on;
  const input = $('second-token');
  input.value = '';
  if (on) {
    $('second-token-label').textContent = 'Recovery code';
    $('second-token-hint').textContent = 'One of the codes you saved when you set up the app, like abcd-efgh-ijkl-mnop.';
    input.setAttribute('inputmode', 'text');
    input.setAttribute('autocomplete', 'off');
    $('second-switch').textContent = 'Use a code from the app instead';
  } else {
    $('second-token-label').textContent = 'Code from your authenticator app';
    $('second-token-hint').textContent = 'The code your app shows now for this account.';
    input.setAttribute('inputmode', 'numeric');
    input.setAttribute('autocomplete', 'one-time-code');
    $('second-switch').textContent = 'Use a recovery code instead';
  }
}

function resetSecondStep() {
  pending = null;
  clearErrors($('second-form'));
  setRecoveryMode(false);
}

onClick('second-restart', () => {
  const username = pending ? pending.username : '';
  resetSecondStep();
  show('login', username ? 'login-password' : 'login-username');
  $('login-username').value = username;
});

onClick('second-switch', () => {
  clearErrors($('second-form'));
  setRecoveryMode(!recoveryMode);
  $('second-token').focus();
});

onSubmit('second-form', async (form) => {
  clearErrors(form);
  if (!pending) return routeFromHash();
  const token = value(form, 'token').trim();
  const r = await api('POST', '/login-2fa', { username: pending.username, token, mfa_token: pending.mfaToken });
  if (r.ok) {
    // A TOTP code is digits only; a recovery code has letters.
    const usedRecovery = recoveryMode || /[a-z]/i.test(token);
    resetSecondStep();
    await signedIn(r.data.token);
    const remaining = r.data.recovery_codes_remaining;
    if (usedRecovery && typeof remaining === 'number') {
      flash('You signed in with a recovery code. ' + remaining + ' recovery code' +
        (remaining === 1 ? '' : 's') + ' left.');
    }
    signInNotices(r.data);
    return;
  }
  if (r.data.code === 'invalid_mfa_token') {
    const username = pending.username;
    resetSecondStep();
    show('login', 'login-password');
    $('login-username').value = username;
    formError($('login-form'), 'Your sign-in expired. Enter your password again.');
    return;
  }
  showError(form, r, {
    invalid_otp: ['token', recoveryMode
      ? 'That recovery code is not right, or it was already used.'
      : 'That code is not right. Type the code your app shows now.'],
  });
});

// ---- sign up -------------------------------------------------------------------------
onSubmit('signup-form', async (form) => {
  clearErrors(form);
  flash('');
  notice([]);
  const username = value(form, 'username').trim();
  const password = value(form, 'password');
  const enableMfa = form.elements.namedItem('enable_mfa').checked;
  const r = await api('POST', '/signup', { username, password, enable_mfa: enableMfa });
  if (!r.ok) {
    showError(form, r, { user_exists: ['username', 'This username is taken. Choose another one.'] });
    return;
  }
  form.reset();
  if (enableMfa) {
    await startEnrollment(username, password, r.data, null);
    return;
  }
  const login = await api('POST', '/login', { username, password });
  if (login.ok && login.data.token) {
    await signedIn(login.data.token);
    flash('Your account is ready.');
  } else {
    show('login', 'login-username');
    flash('Your account is ready. Log in.');
  }
});

// ---- start ----------------------------------------------------------------------------
window.addEventListener('hashchange', () => {
  flash('');
  routeFromHash();
});
routeFromHash();
