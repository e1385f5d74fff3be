// Setting up the first authenticator app (after /signup or /enable-mfa): the
// QR code, the key in groups of four, the recovery codes, the first code.
// The password is kept in memory until the first code is accepted (it
// fetches the QR code and the mfa_token), then dropped.
import { api } from './api.js';
import { signedIn } from './account.js';
import {
  $, clearErrors, codesPanel, flash, formError, grouped, kindOf, onSubmit, parseUri, show, showError, value,
} from './ui.js';

let enrollment = null; // {username, password, mfaToken, previous, forgetCodes}
let qrUrl = null; // object URL of the QR image

/** Shows the set-up page for the answer of /signup or /enable-mfa. */
export async function startEnrollment(username, password, body, previous) {
  const uri = body.provisioning_uri || '';
  const params = parseUri(uri);
  enrollment = {
    username,
    password,
    mfaToken: null,
    previous,
    forgetCodes: codesPanel('enroll-codes', body.recovery_codes || [],
      'twofactor-recovery-codes-' + username + '.txt'),
  };
  $('enroll-secret').textContent = grouped(params.secret);
  $('enroll-kind').textContent = kindOf(params);
  $('enroll-account').textContent = username;
  $('enroll-link').href = uri;
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

/** The first code both confirms the app and signs in: /login, then /login-2fa. */
onSubmit('confirm-form', async (form) => {
  clearErrors(form);
  if (!enrollment) return;
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

/** Forgets the enrollment: the password, the key, the codes. */
export function finishEnrollment() {
  if (!enrollment) return;
  enrollment.forgetCodes();
  enrollment = null;
  if (qrUrl) URL.revokeObjectURL(qrUrl);
  qrUrl = null;
  $('enroll-qr').removeAttribute('src');
  $('enroll-secret').textContent = '';
  $('enroll-link').removeAttribute('href');
}
