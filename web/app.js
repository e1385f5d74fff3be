// twofactor web front end: a client of the JSON API, served by the same
// binary. No framework, no build step, no network beyond this origin.
//
// The session token lives in a variable of this script only (never in
// localStorage, sessionStorage or a cookie): reloading the page logs out.
// During enrollment the password is kept in a variable until the first code
// is accepted, then dropped.
'use strict';

(function () {
  // ---- state (memory only) ----------------------------------------------
  let session = null; // bearer token of the signed-in user
  let account = null; // {username, mfa_enabled} from GET /me
  let pending = null; // second step: {username, mfaToken}
  let enrollment = null; // {username, password, mfaToken, codes, previous}
  let qrUrl = null; // object URL of the QR image
  const timers = new Map(); // form -> lockout countdown interval

  const $ = (id) => document.getElementById(id);

  // ---- API ----------------------------------------------------------------
  /** Calls the API; never throws. Resolves to {ok, status, data, retryAfter}. */
  async function api(method, path, body, token) {
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

  // ---- views ----------------------------------------------------------------
  const VIEWS = ['login', 'second', 'signup', 'enroll', 'account'];

  /** Shows one view and moves the focus into it. */
  function show(name, focusId) {
    for (const v of VIEWS) $('view-' + v).hidden = v !== name;
    document.title = $(name + '-title').textContent + ' · twofactor';
    const target = $(focusId || name + '-title');
    if (target) target.focus();
  }

  function flash(text) {
    $('flash').textContent = text || '';
  }

  function routeFromHash() {
    // Only the public pages have addresses; the others need state.
    if (location.hash === '#signup') {
      resetSecondStep();
      show('signup', 'signup-username');
    } else if (session && account) {
      show('account');
    } else {
      resetSecondStep();
      show('login', 'login-username');
    }
  }

  // ---- errors -----------------------------------------------------------------
  function clearErrors(form) {
    for (const el of form.querySelectorAll('.field-error, .form-error')) el.textContent = '';
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  }

  function fieldError(form, name, text) {
    const input = form.elements.namedItem(name);
    if (!input || !input.id) return false;
    const slot = $(input.id + '-error');
    if (!slot) return false;
    slot.textContent = text;
    input.setAttribute('aria-invalid', 'true');
    input.focus();
    if (typeof input.select === 'function') input.select();
    return true;
  }

  function formError(form, text) {
    form.querySelector('.form-error').textContent = text;
  }

  function labelOf(form, name) {
    const input = form.elements.namedItem(name);
    const label = input && input.labels && input.labels[0];
    return label ? label.textContent.trim() : name;
  }

  /**
   * Shows an API error in words, next to the field it concerns. `fields`
   * maps error codes to field names for this form, and may override the
   * words: {invalid_otp: ['token', 'That code is not right.']}.
   */
  function showError(form, result, fields) {
    clearErrors(form);
    const { code, detail } = result.data;
    if (code === 'too_many_attempts') {
      lockForm(form, result.retryAfter || 30);
      return;
    }
    if (code === 'invalid_input') {
      const match = /^([a-z_]+): (.*)$/.exec(detail || '');
      if (match && fieldError(form, match[1], labelOf(form, match[1]) + ' ' + match[2] + '.')) return;
    }
    const mapped = fields && fields[code];
    if (mapped && fieldError(form, mapped[0], mapped[1] || detail)) return;
    const words = {
      busy: 'The server is busy. Try again in a moment.',
      unavailable: 'The service is unavailable right now. Try again in a moment.',
      internal: 'Something went wrong on the server. Try again.',
    };
    formError(form, words[code] || detail);
  }

  /** Disables the form's submit button and counts down `seconds`. */
  function lockForm(form, seconds) {
    const button = form.querySelector('button[type=submit]');
    const until = Date.now() + seconds * 1000;
    clearInterval(timers.get(form));
    form.dataset.locked = 'true';
    button.disabled = true;
    const tick = () => {
      const left = Math.ceil((until - Date.now()) / 1000);
      if (left > 0) {
        formError(form, 'Too many failed attempts. Try again in ' + left + ' s.');
        return;
      }
      clearInterval(timers.get(form));
      timers.delete(form);
      delete form.dataset.locked;
      button.disabled = false;
      formError(form, 'You can try again now.');
    };
    tick();
    timers.set(form, setInterval(tick, 250));
  }

  /** Runs `work` with the form's submit button disabled (no double submit). */
  async function busy(form, work) {
    const button = form.querySelector('button[type=submit]');
    if (button.disabled) return;
    button.disabled = true;
    form.setAttribute('aria-busy', 'true');
    try {
      await work();
    } finally {
      form.removeAttribute('aria-busy');
      if (!form.dataset.locked) button.disabled = false;
    }
  }

  function onSubmit(id, handler) {
    const form = $(id);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      busy(form, () => handler(form));
    });
  }

  const value = (form, name) => form.elements.namedItem(name).value;

  // ---- log in ---------------------------------------------------------------------
  onSubmit('login-form', async (form) => {
    clearErrors(form);
    flash('');
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

  $('second-restart').addEventListener('click', () => {
    const username = pending ? pending.username : '';
    resetSecondStep();
    show('login', username ? 'login-password' : 'login-username');
    $('login-username').value = username;
  });

  $('second-switch').addEventListener('click', () => {
    clearErrors($('second-form'));
    setRecoveryMode(!recoveryMode);
    $('second-token').focus();
  });

  onSubmit('second-form', async (form) => {
    clearErrors(form);
    if (!pending) return routeFromHash();
    const r = await api('POST', '/login-2fa', {
      username: pending.username,
      token: value(form, 'token').trim(),
      mfa_token: pending.mfaToken,
    });
    if (r.ok) {
      const remaining = r.data.recovery_codes_remaining;
      resetSecondStep();
      await signedIn(r.data.token);
      if (typeof remaining === 'number') {
        flash('You signed in with a recovery code. ' + remaining + ' recovery code' +
          (remaining === 1 ? '' : 's') + ' left.');
      }
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

  // ---- enrollment -------------------------------------------------------------------------
  /** The key and the code parameters of an otpauth:// URI. */
  function parseUri(uri) {
    let params;
    try {
      params = new URL(uri).searchParams;
    } catch (e) {
      params = new URLSearchParams();
    }
    return {
      secret: params.get('secret') || '',
      digits: params.get('digits') || '6',
      period: params.get('period') || '30',
    };
  }

  async function startEnrollment(username, password, body, previous) {
    enrollment = { username, password, mfaToken: null, codes: body.recovery_codes || [], previous };
    const uri = body.provisioning_uri || '';
    const { secret, digits, period } = parseUri(uri);
    $('enroll-secret').textContent = (secret.match(/.{1,4}/g) || []).join(' ');
    $('enroll-kind').textContent = 'time-based, ' + digits + ' digits' + (period === '30' ? '' : ', every ' + period + ' s');
    $('enroll-account').textContent = username;
    $('enroll-link').href = uri;
    const list = $('enroll-codes');
    list.replaceChildren(...enrollment.codes.map((c) => {
      const li = document.createElement('li');
      const code = document.createElement('code');
      code.textContent = c;
      li.append(code);
      return li;
    }));
    $('enroll-codes-status').textContent = '';
    clearErrors($('confirm-form'));
    $('confirm-form').reset();
    show('enroll');
    await loadQr();
  }

  async function loadQr() {
    const img = $('enroll-qr');
    const status = $('enroll-qr-status');
    img.hidden = true;
    status.textContent = 'Loading the QR code…';
    const path = '/qrcode/' + encodeURIComponent(enrollment.username) + '?format=svg';
    const r = await api('POST', path, { password: enrollment.password });
    if (!enrollment) return;
    if (!r.ok || !(r.data instanceof Blob)) {
      status.textContent = 'The QR code could not be shown (' + (r.data && r.data.detail || 'error') +
        '). Type the key below instead.';
      return;
    }
    if (qrUrl) URL.revokeObjectURL(qrUrl);
    qrUrl = URL.createObjectURL(r.data);
    img.alt = 'QR code to add ' + enrollment.username + ' to an authenticator app';
    img.src = qrUrl;
    img.hidden = false;
    status.textContent = '';
  }

  function codesText() {
    return enrollment.codes.join('\n') + '\n';
  }

  $('enroll-copy').addEventListener('click', async () => {
    const status = $('enroll-codes-status');
    try {
      await navigator.clipboard.writeText(codesText());
      status.textContent = 'The recovery codes are copied.';
    } catch (e) {
      status.textContent = 'Copying is not allowed here: select the codes and copy them, or download them.';
    }
  });

  $('enroll-download').addEventListener('click', () => {
    const blob = new Blob([codesText()], { type: 'text/plain' });
    const url = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = url;
    a.download = 'twofactor-recovery-codes-' + enrollment.username + '.txt';
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    $('enroll-codes-status').textContent = 'The recovery codes are downloaded.';
  });

  /** The first code both confirms the app and signs in: /login, then /login-2fa. */
  onSubmit('confirm-form', async (form) => {
    clearErrors(form);
    if (!enrollment) return routeFromHash();
    const token = value(form, 'token').trim();
    for (let attempt = 0; attempt < 2; attempt++) {
      if (!enrollment.mfaToken) {
        const login = await api('POST', '/login', {
          username: enrollment.username,
          password: enrollment.password,
        });
        if (!login.ok) {
          showError(form, login);
          return;
        }
        if (!login.data.mfa_required) {
          formError(form, 'Two-step verification is not on for this account.');
          return;
        }
        enrollment.mfaToken = login.data.mfa_token;
      }
      const r = await api('POST', '/login-2fa', {
        username: enrollment.username,
        token,
        mfa_token: enrollment.mfaToken,
      });
      if (r.ok) {
        const previous = enrollment.previous;
        finishEnrollment();
        if (previous) api('POST', '/logout', undefined, previous);
        await signedIn(r.data.token);
        flash('Your authenticator app is set up. You are signed in.');
        return;
      }
      if (r.data.code === 'invalid_mfa_token') {
        // Expired while the person was setting up the app: log in again.
        enrollment.mfaToken = null;
        continue;
      }
      showError(form, r, { invalid_otp: ['token', 'That code is not right. Check the app and type the code it shows now.'] });
      return;
    }
    formError(form, 'Could not sign in. Try again.');
  });

  function finishEnrollment() {
    enrollment = null; // drops the password
    if (qrUrl) URL.revokeObjectURL(qrUrl);
    qrUrl = null;
    $('enroll-qr').removeAttribute('src');
    $('enroll-secret').textContent = '';
    $('enroll-codes').replaceChildren();
    $('enroll-link').removeAttribute('href');
  }

  // ---- account ------------------------------------------------------------------------------
  async function signedIn(token) {
    session = token;
    await loadAccount();
  }

  async function loadAccount() {
    const r = await api('GET', '/me', undefined, session);
    if (!r.ok) {
      signedOut(r.status === 401 ? 'Your session ended. Log in again.' : r.data.detail);
      return;
    }
    account = r.data;
    $('account-username').textContent = account.username;
    $('account-mfa').textContent = account.mfa_enabled ? 'On' : 'Off';
    for (const id of ['disable-form', 'enable-form']) {
      clearErrors($(id));
      $(id).reset();
    }
    $('disable-form').hidden = !account.mfa_enabled;
    $('enable-form').hidden = account.mfa_enabled;
    if (location.hash) history.replaceState(null, '', location.pathname);
    show('account');
  }

  function signedOut(message) {
    session = null;
    account = null;
    resetSecondStep();
    if (location.hash) history.replaceState(null, '', location.pathname);
    show('login', 'login-username');
    flash(message || '');
  }

  onSubmit('disable-form', async (form) => {
    clearErrors(form);
    flash('');
    const r = await api('POST', '/disable-mfa', {
      username: account.username,
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
    await loadAccount();
    flash('Two-step verification is off.');
  });

  onSubmit('enable-form', async (form) => {
    clearErrors(form);
    flash('');
    const password = value(form, 'password');
    const r = await api('POST', '/enable-mfa', { username: account.username, password });
    if (!r.ok) {
      showError(form, r, { invalid_credentials: ['password', 'Wrong password.'] });
      return;
    }
    await startEnrollment(account.username, password, r.data, session);
  });

  $('logout').addEventListener('click', async () => {
    const r = await api('POST', '/logout', undefined, session);
    signedOut(r.ok || r.status === 401 ? 'You are logged out.' : 'You are logged out on this page.');
  });

  // ---- start ----------------------------------------------------------------------------------
  window.addEventListener('hashchange', () => {
    flash('');
    routeFromHash();
  });
  routeFromHash();
})();
