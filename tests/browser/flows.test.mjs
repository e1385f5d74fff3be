// The web front end walked in headless chromium against the real server:
// every flow a person takes, with TOTP codes computed here from the secret
// the page shows. Screenshots of each page go to tests/browser/artifacts/
// (readme-*.png are the README's pictures in docs/).
//
//   TWOFACTOR_BIN=target/release/twofactor node --test flows.test.mjs
//   (tests/browser/run.sh does this, after npm ci)
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, afterEach, before, test } from 'node:test';

import {
  ARTIFACTS, LOCKOUT_SECONDS, PASSWORD, apiCall, freshCode, launchBrowser, mfaUser, newPage, shot,
  startServer, stepNow, storageIsEmpty, totp, wrongCode,
} from './lib.mjs';

let server;
let browser;
const pages = [];

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A watched page, checked for console errors and CSP violations after the test. */
async function open(options) {
  const page = await newPage(browser, options);
  pages.push(page);
  await page.goto(server.url + '/');
  return page;
}

afterEach(async () => {
  for (const page of pages.splice(0)) {
    const problems = page.problems;
    await page.context().close();
    assert.deepEqual(problems, [], 'console errors or CSP violations in the page');
  }
});

const view = (page, name) => page.locator(`#view-${name}`);

async function expectView(page, name) {
  await view(page, name).waitFor({ state: 'visible', timeout: 10_000 });
}

/** Waits until the element's text matches `pattern`; returns the text. */
async function expectText(page, selector, pattern, timeout = 10_000) {
  const started = Date.now();
  let text = '';
  while (Date.now() - started < timeout) {
    text = ((await page.locator(selector).textContent()) || '').trim();
    if (pattern.test(text)) return text;
    await page.waitForTimeout(100);
  }
  assert.fail(`${selector}: ${JSON.stringify(text)} does not match ${pattern}`);
}

async function logIn(page, username) {
  const form = view(page, 'login');
  await form.getByLabel('Username').fill(username);
  await form.getByLabel('Password').fill(PASSWORD);
  await form.getByRole('button', { name: 'Log in' }).click();
}

async function submitSecondStep(page, code) {
  const form = view(page, 'second');
  await form.locator('#second-token').fill(code);
  await form.getByRole('button', { name: 'Verify' }).click();
}

async function expectAccount(page, username, mfa) {
  await expectView(page, 'account');
  await expectText(page, '#account-username', new RegExp(`^${username}$`));
  await expectText(page, '#account-mfa', new RegExp(`^${mfa}$`));
}

async function logOut(page) {
  await view(page, 'account').getByRole('button', { name: 'Log out' }).click();
  await expectView(page, 'login');
  await expectText(page, '#flash', /logged out/);
}

/** Signs up with MFA through the page; returns {username, secret, codes, floor}. */
async function signUpWithMfa(page, username, name) {
  await page.getByRole('link', { name: 'Create an account' }).click();
  await expectView(page, 'signup');
  const form = view(page, 'signup');
  await form.getByLabel('Username').fill(username);
  await form.getByLabel('Password').fill(PASSWORD);
  assert.equal(await form.getByLabel('Protect my account with an authenticator app').isChecked(), true,
    'MFA is on by default');
  if (name) await shot(page, name);
  await form.getByRole('button', { name: 'Create account' }).click();
  await expectView(page, 'enroll');
  const secret = (await page.locator('#enroll-secret').textContent()).trim();
  assert.match(secret, /^([A-Z2-7]{4} )+[A-Z2-7]{1,4}$/, 'secret grouped in fours');
  const codes = await page.locator('#enroll-codes li').allTextContents();
  assert.equal(codes.length, 10);
  // The QR image has loaded (an SVG from /qrcode, shown through a blob: URL).
  await page.waitForFunction(() => {
    const img = document.getElementById('enroll-qr');
    return !img.hidden && img.complete && img.naturalWidth > 100;
  });
  return { username, secret: secret.replace(/ /g, ''), codes: codes.map((c) => c.trim()), floor: null };
}

/** Answers the next /login-2fa as the server does for an expired mfa_token. */
async function expireFirstMfaToken(page) {
  await page.route('**/login-2fa', (route) => route.fulfill({
    status: 401,
    contentType: 'application/json',
    body: JSON.stringify({ detail: 'Invalid or expired MFA token; log in again', code: 'invalid_mfa_token' }),
  }), { times: 1 });
}

async function confirmFirstCode(page, code) {
  const form = view(page, 'enroll').locator('#confirm-form');
  await form.getByLabel('Code from your authenticator app').fill(code);
  await form.getByRole('button', { name: 'Confirm and sign in' }).click();
}

/** Logs in through the page with the password and a fresh code of `device`. */
async function signIn(page, user, device = user) {
  await logIn(page, user.username);
  await expectView(page, 'second');
  await submitSecondStep(page, await freshCode(device));
  await expectAccount(page, user.username, 'On');
}

/** Adds an app on the account page; returns {secret, floor} (its first code not yet given). */
async function addDevice(page, label) {
  await page.getByRole('button', { name: 'Add an authenticator app' }).click();
  const form = page.locator('#add-device-form');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'add-device-label');
  await form.getByLabel('Name for the app').fill(label);
  await form.getByLabel('Password').fill(PASSWORD);
  await form.getByRole('button', { name: 'Continue' }).click();
  await page.locator('#new-device').waitFor({ state: 'visible', timeout: 10_000 });
  await expectText(page, '#new-device-title', new RegExp(`^Set up “${label}”$`));
  // The QR code is a PNG data: URI, allowed by the page's img-src.
  await page.waitForFunction(() => {
    const img = document.getElementById('new-device-qr');
    return img.src.startsWith('data:image/png;base64,') && img.complete && img.naturalWidth > 100;
  });
  const secret = (await page.locator('#new-device-secret').textContent()).trim();
  assert.match(secret, /^([A-Z2-7]{4} )+[A-Z2-7]{1,4}$/, 'secret grouped in fours');
  const link = await page.locator('#new-device-link').getAttribute('href');
  assert.ok(link.startsWith('otpauth://totp/') && link.includes(secret.replace(/ /g, '')), link);
  return { secret: secret.replace(/ /g, ''), floor: null };
}

async function confirmDevice(page, code) {
  const form = page.locator('#confirm-device-form');
  await form.getByLabel('Code from the new app').fill(code);
  await form.getByRole('button', { name: 'Confirm the app' }).click();
}

/** The labels of the listed apps, in order. */
async function deviceLabels(page) {
  return page.locator('#devices-list > li').evaluateAll((items) => items.map((li) => li.dataset.label));
}

async function removeDevice(page, label, { password, token }) {
  await page.getByRole('button', { name: `Remove ${label}` }).click();
  const form = page.locator('#remove-device-form');
  await expectText(page, '#remove-device-title', new RegExp(`^Remove “${label}”$`));
  await form.getByLabel('Password').fill(password || '');
  await form.getByLabel('Or a code from one of your apps').fill(token || '');
  await form.getByRole('button', { name: 'Remove', exact: true }).click();
}

/** Waits until `n` sessions are listed. */
async function expectSessions(page, n) {
  await page.waitForFunction((n) => document.querySelectorAll('#sessions-list > li').length === n, n,
    { timeout: 10_000 });
}

/** Seconds left in the current TOTP step. */
const secondsLeftInStep = () => 30 - (Date.now() / 1000) % 30;

// ---------------------------------------------------------------------------------

test('the page is served with a strict CSP, no framing and no referrer', async () => {
  for (const route of ['/', '/app.js', '/app.css']) {
    const r = await fetch(server.url + route);
    assert.equal(r.status, 200, route);
    const csp = r.headers.get('content-security-policy') || '';
    for (const d of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"]) {
      assert.ok(csp.includes(d), `${route}: CSP ${csp} lacks ${d}`);
    }
    assert.ok(!csp.includes('unsafe-inline'), csp);
    assert.equal(r.headers.get('x-frame-options'), 'DENY');
    assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  }
});

test('the TOTP of this suite agrees with the binary\'s own `code` command', () => {
  const secret = 'JBSWY3DPEHPK3PXP';
  const printed = execFileSync(server.bin, ['code', secret], { encoding: 'utf8' }).trim();
  const now = stepNow();
  assert.ok([now - 1, now, now + 1].map((s) => totp(secret, s)).includes(printed), printed);
});

test('sign up with MFA: QR, secret, recovery codes, a wrong first code, then the right one', async () => {
  const page = await open();
  const logins = [];
  page.on('request', (r) => { if (r.url().endsWith('/login')) logins.push(r.url()); });
  await expectView(page, 'login');
  await shot(page, 'login');
  await page.locator('main').screenshot({ path: `${ARTIFACTS}/readme-login.png` });
  const user = await signUpWithMfa(page, 'alice', 'signup');
  const link = await page.locator('#enroll-link').getAttribute('href');
  assert.match(link, /^otpauth:\/\/totp\/twofactor:alice\?secret=[A-Z2-7]+&issuer=twofactor$/);
  assert.ok(link.includes(user.secret));

  // Copy and download of the recovery codes.
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
  await page.getByRole('button', { name: 'Copy codes' }).click();
  await expectText(page, '#enroll-codes-status', /copied/);
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), user.codes.join('\n') + '\n');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download codes' }).click(),
  ]);
  assert.equal(download.suggestedFilename(), 'twofactor-recovery-codes-alice.txt');
  assert.equal(readFileSync(await download.path(), 'utf8'), user.codes.join('\n') + '\n');
  await shot(page, 'enroll');
  await page.locator('main').screenshot({ path: `${ARTIFACTS}/readme-enrollment.png` });

  // The OTP field says what it is to phones and password managers.
  const field = page.locator('#confirm-token');
  assert.equal(await field.getAttribute('inputmode'), 'numeric');
  assert.equal(await field.getAttribute('autocomplete'), 'one-time-code');

  // A wrong code says so, next to the field, and lets the person retry.
  await confirmFirstCode(page, wrongCode(user.secret));
  await expectText(page, '#confirm-token-error', /code is not right/);
  assert.equal(await field.getAttribute('aria-invalid'), 'true');
  await shot(page, 'enroll-wrong-code');
  await confirmFirstCode(page, await freshCode(user));
  await expectAccount(page, 'alice', 'On');
  await expectText(page, '#flash', /authenticator app is set up/);
  assert.equal(logins.length, 1, 'the mfa_token of /login outlives a wrong code');
  await shot(page, 'account');
  assert.equal(await storageIsEmpty(page), true, 'nothing in storage');

  // Log out, and in again with the password and a code from the app.
  await logOut(page);
  await logIn(page, 'alice');
  await expectView(page, 'second');
  await shot(page, 'second-step');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'second-token');
  await submitSecondStep(page, await freshCode(user));
  await expectAccount(page, 'alice', 'On');
  // The QR code is gone for good once the first code was accepted.
  const qr = await apiCall(server.url, 'POST', '/qrcode/alice', { password: PASSWORD });
  assert.equal(qr.status, 409);
  assert.equal(await storageIsEmpty(page), true, 'nothing in storage');
  await logOut(page);
});

test('every API error is shown in words next to its field', async () => {
  const page = await open();
  await page.getByRole('link', { name: 'Create an account' }).click();
  const form = view(page, 'signup');
  const create = form.getByRole('button', { name: 'Create account' });
  await form.getByLabel('Username').fill('bob smith');
  await form.getByLabel('Password').fill(PASSWORD);
  await create.click();
  await expectText(page, '#signup-username-error', /^Username must be 1 to 64 characters/);
  assert.equal(await form.getByLabel('Username').getAttribute('aria-invalid'), 'true');

  await form.getByLabel('Username').fill('bob');
  await form.getByLabel('Password').fill('short');
  await create.click();
  await expectText(page, '#signup-password-error', /^Password must be 8 to 256 characters\.$/);
  assert.equal(await page.locator('#signup-username-error').textContent(), '', 'old error cleared');
  await shot(page, 'signup-errors');

  await mfaUser(server.url, 'taken');
  await form.getByLabel('Username').fill('Taken');
  await form.getByLabel('Password').fill(PASSWORD);
  await create.click();
  await expectText(page, '#signup-username-error', /username is taken/);

  // Without MFA: straight to the account page.
  await form.getByLabel('Username').fill('bob');
  await form.getByLabel('Protect my account with an authenticator app').uncheck();
  await create.click();
  await expectAccount(page, 'bob', 'Off');
  await logOut(page);

  const login = view(page, 'login');
  await login.getByLabel('Username').fill('bob');
  await login.getByLabel('Password').fill('not the password');
  await login.getByRole('button', { name: 'Log in' }).click();
  await expectText(page, '#login-password-error', /^Wrong username or password\.$/);
  await shot(page, 'login-error');
});

test('account page: turn MFA off with password and code, then on again', async () => {
  const user = await mfaUser(server.url, 'carol');
  const page = await open();
  await logIn(page, 'carol');
  await expectView(page, 'second');
  await submitSecondStep(page, await freshCode(user));
  await expectAccount(page, 'carol', 'On');

  const form = page.locator('#disable-form');
  const turnOff = form.getByRole('button', { name: 'Turn off' });
  await form.getByLabel('Password').fill('not the password');
  await form.getByLabel(/^Code from your authenticator app/).fill(wrongCode(user.secret));
  await turnOff.click();
  await expectText(page, '#disable-password-error', /^Wrong password\.$/);
  await form.getByLabel('Password').fill(PASSWORD);
  await turnOff.click();
  await expectText(page, '#disable-token-error', /code is not right/);
  await shot(page, 'account-disable-error');
  await form.getByLabel(/^Code from your authenticator app/).fill(await freshCode(user));
  await turnOff.click();
  await expectAccount(page, 'carol', 'Off');
  await expectText(page, '#flash', /is off/);

  // On again: a new secret, a new QR, confirmed by its first code.
  const enable = page.locator('#enable-form');
  await enable.getByLabel('Password').fill(PASSWORD);
  await enable.getByRole('button', { name: 'Turn on' }).click();
  await expectView(page, 'enroll');
  await page.waitForFunction(() => document.getElementById('enroll-qr').naturalWidth > 100);
  const secret = (await page.locator('#enroll-secret').textContent()).replace(/ /g, '');
  assert.notEqual(secret, user.secret, 'a new secret');
  await confirmFirstCode(page, totp(secret, stepNow()));
  await expectAccount(page, 'carol', 'On');
  await logOut(page);
});

test('an expired second step sends the person back to the password', async () => {
  const user = await mfaUser(server.url, 'heidi');
  const page = await open();
  await logIn(page, 'heidi');
  await expectView(page, 'second');
  await expireFirstMfaToken(page);
  await submitSecondStep(page, await freshCode(user));
  await expectView(page, 'login');
  await expectText(page, '#view-login .form-error', /expired\. Enter your password again/);
  assert.equal(await page.locator('#login-username').inputValue(), 'heidi');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'login-password');
});

test('log in with a recovery code, which works once', async () => {
  const user = await mfaUser(server.url, 'dave');
  const page = await open();
  await logIn(page, 'dave');
  await expectView(page, 'second');
  await page.getByRole('button', { name: 'Use a recovery code instead' }).click();
  const field = view(page, 'second').getByLabel('Recovery code');
  assert.equal(await field.getAttribute('inputmode'), 'text');
  await shot(page, 'second-step-recovery');
  await field.fill(user.codes[0].toUpperCase());
  await page.getByRole('button', { name: 'Verify' }).click();
  await expectAccount(page, 'dave', 'On');
  await expectText(page, '#flash', /recovery code\. 9 recovery codes left/);
  await logOut(page);

  await logIn(page, 'dave');
  await expectView(page, 'second');
  await page.getByRole('button', { name: 'Use a recovery code instead' }).click();
  await view(page, 'second').getByLabel('Recovery code').fill(user.codes[0]);
  await page.getByRole('button', { name: 'Verify' }).click();
  await expectText(page, '#second-token-error', /already used/);
});

test('a lockout shows a live countdown, then lets the person try again', async () => {
  const user = await mfaUser(server.url, 'erin');
  const page = await open();
  await logIn(page, 'erin');
  await expectView(page, 'second');
  const verify = page.getByRole('button', { name: 'Verify' });
  for (let i = 0; i < 5; i++) {
    await submitSecondStep(page, wrongCode(user.secret));
    await expectText(page, '#second-token-error', /code is not right/);
  }
  // The sixth attempt, even with the right code, meets the lock (429).
  await submitSecondStep(page, totp(user.secret, stepNow()));
  const first = await expectText(page, '#view-second .form-error', /Try again in \d+ s\./);
  assert.equal(await verify.isDisabled(), true, 'submit disabled during the lockout');
  await shot(page, 'lockout');
  const seconds = (text) => Number(/in (\d+) s/.exec(text)[1]);
  assert.ok(seconds(first) <= LOCKOUT_SECONDS && seconds(first) >= 1, first);
  await page.waitForTimeout(1300);
  const later = await expectText(page, '#view-second .form-error', /./);
  assert.ok(/try again now/.test(later) || seconds(later) < seconds(first), `${first} then ${later}`);
  await expectText(page, '#view-second .form-error', /You can try again now/, (LOCKOUT_SECONDS + 3) * 1000);
  assert.equal(await verify.isDisabled(), false);
  await submitSecondStep(page, await freshCode(user));
  await expectAccount(page, 'erin', 'On');
});

test('keyboard only: log in, second step, log out', async () => {
  const user = await mfaUser(server.url, 'frank');
  const page = await open();
  await expectView(page, 'login');
  const focused = () => page.evaluate(() => document.activeElement && document.activeElement.id);
  assert.equal(await focused(), 'login-username', 'the first field has the focus');
  await page.keyboard.type('frank');
  await page.keyboard.press('Tab');
  assert.equal(await focused(), 'login-password');
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press('Enter');
  await expectView(page, 'second');
  assert.equal(await focused(), 'second-token');
  await page.keyboard.type(wrongCode(user.secret));
  await page.keyboard.press('Enter');
  await expectText(page, '#second-token-error', /code is not right/);
  assert.equal(await focused(), 'second-token', 'focus back on the field with the error');
  await page.keyboard.press('Control+A');
  await page.keyboard.type(await freshCode(user));
  await page.keyboard.press('Enter');
  await expectAccount(page, 'frank', 'On');
  let reached = false;
  for (let i = 0; i < 12 && !reached; i++) {
    await page.keyboard.press('Tab');
    reached = (await focused()) === 'logout';
  }
  assert.ok(reached, 'Tab reaches the Log out button');
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, 'none', 'the focus is visible');
  await shot(page, 'keyboard-focus');
  await page.keyboard.press('Enter');
  await expectView(page, 'login');
});

test('phone-sized viewport: sign up, set up and sign in', async () => {
  const page = await open({ viewport: { width: 375, height: 667 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  await expectView(page, 'login');
  await shot(page, 'phone-login');
  const user = await signUpWithMfa(page, 'grace', 'phone-signup');
  await shot(page, 'phone-enroll');
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 375, `no sideways scrolling (scrollWidth ${width})`);
  // The person took longer than the mfa_token's 5 minutes: the first answer
  // is 401 invalid_mfa_token, and the page logs in again by itself.
  await expireFirstMfaToken(page);
  const logins = [];
  page.on('request', (r) => { if (r.url().endsWith('/login')) logins.push(r.url()); });
  await confirmFirstCode(page, await freshCode(user));
  await expectAccount(page, 'grace', 'On');
  assert.equal(logins.length, 2, 'a second /login after the expired mfa_token');
  await shot(page, 'phone-account');
});

test('/docs (Swagger UI) works under its own policy', async () => {
  const page = await newPage(browser);
  pages.push(page);
  const resp = await page.goto(server.url + '/docs/');
  assert.match(resp.headers()['content-security-policy'] || '', /frame-ancestors 'none'/);
  await page.locator('.swagger-ui .info .title').waitFor({ timeout: 15_000 });
  await page.locator('.opblock-summary-path', { hasText: '/login-2fa' }).first().waitFor();
  await shot(page, 'docs');
});

test('authenticator apps: add a second one (a wrong code, then the right one) and log in with it', async () => {
  const user = await mfaUser(server.url, 'ivan');
  const page = await open();
  await signIn(page, user);
  await page.locator('#devices-list > li').first().waitFor();
  assert.deepEqual(await deviceLabels(page), ['default']);
  const first = page.locator('#devices-list > li').first();
  assert.match(await first.textContent(), /time-based, 6 digits/);
  assert.match(await first.textContent(), /Last used/);

  // A wrong password is said beside its field.
  await page.getByRole('button', { name: 'Add an authenticator app' }).click();
  const add = page.locator('#add-device-form');
  await add.getByLabel('Name for the app').fill('work phone');
  await add.getByLabel('Password').fill('not the password');
  await add.getByRole('button', { name: 'Continue' }).click();
  await expectText(page, '#add-device-password-error', /^Wrong password\.$/);
  await add.getByRole('button', { name: 'Cancel' }).click();

  const phone = await addDevice(page, 'work phone');
  await shot(page, 'device-add');
  // Listed as pending meanwhile.
  await page.waitForFunction(() => document.querySelectorAll('#devices-list > li').length === 2);
  await expectText(page, '#devices-list > li:nth-child(2)', /Waiting for its first code/);
  // A code of the first app is not this app's code: an error, then a retry.
  await confirmDevice(page, wrongCode(phone.secret));
  await expectText(page, '#confirm-device-token-error', /code is not right/);
  assert.equal(await page.locator('#confirm-device-token').getAttribute('aria-invalid'), 'true');
  await shot(page, 'device-wrong-code');
  await confirmDevice(page, await freshCode(phone));
  await expectText(page, '#devices-status', /“work phone” is set up/);
  assert.equal(await page.locator('#new-device').isHidden(), true);
  assert.equal(await page.locator('#new-device-secret').textContent(), '', 'the key is gone from the page');
  assert.deepEqual(await deviceLabels(page), ['default', 'work phone']);
  await expectText(page, '#devices-list > li:nth-child(2)', /Last used/);
  assert.doesNotMatch(await page.locator('#devices-list > li:nth-child(2)').textContent(), /Waiting/);
  await shot(page, 'devices');
  await logOut(page);

  // The new app's code signs in.
  await signIn(page, user, phone);
  await logOut(page);
});

test('authenticator apps: cancelling a new one takes it back, so its name is free again', async () => {
  const user = await mfaUser(server.url, 'vera');
  const page = await open();
  await signIn(page, user);
  await page.locator('#devices-list > li').first().waitFor();
  await addDevice(page, 'spare phone');
  await page.waitForFunction(() => document.querySelectorAll('#devices-list > li').length === 2);
  await page.locator('#new-device').getByRole('button', { name: 'Cancel' }).click();
  await expectText(page, '#devices-status', /^“spare phone” was not added\.$/);
  assert.equal(await page.locator('#new-device').isHidden(), true);
  assert.equal(await page.locator('#new-device-secret').textContent(), '', 'the key is gone from the page');
  assert.deepEqual(await deviceLabels(page), ['default']);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'add-device-open');
  // Taken back on the server too: the same name can be added at once.
  const phone = await addDevice(page, 'spare phone');
  await confirmDevice(page, await freshCode(phone));
  await expectText(page, '#devices-status', /“spare phone” is set up/);
  assert.deepEqual(await deviceLabels(page), ['default', 'spare phone']);
  await logOut(page);
});

test('authenticator apps: remove one with a code; the last one cannot go (409 in words)', async () => {
  const user = await mfaUser(server.url, 'judy');
  const page = await open();
  await signIn(page, user);
  const phone = await addDevice(page, 'tablet');
  await confirmDevice(page, await freshCode(phone));
  await expectText(page, '#devices-status', /is set up/);

  // Neither password nor code: said before asking the server.
  await removeDevice(page, 'default', {});
  await expectText(page, '#remove-device-password-error', /password, or a code/);
  // A wrong password, then the first app removed with a code of the tablet.
  await removeDevice(page, 'default', { password: 'not the password' });
  await expectText(page, '#remove-device-password-error', /^Wrong password\.$/);
  await removeDevice(page, 'default', { token: await freshCode(phone) });
  await expectText(page, '#devices-status', /“default” is removed/);
  assert.deepEqual(await deviceLabels(page), ['tablet']);
  assert.equal(await page.locator('#remove-device-form').isHidden(), true);

  // The last app: the page says why not, in words.
  await removeDevice(page, 'tablet', { password: PASSWORD });
  const said = await expectText(page, '#remove-device-form .form-error', /only authenticator app/);
  assert.match(said, /turn off two-step verification/);
  assert.deepEqual(await deviceLabels(page), ['tablet']);
  await shot(page, 'device-remove-last');
  await page.getByRole('button', { name: 'Cancel' }).click();
  assert.equal(await page.locator('#remove-device-form').isHidden(), true);

  // The removed app's codes no longer sign in.
  await logOut(page);
  await logIn(page, 'judy');
  await expectView(page, 'second');
  await submitSecondStep(page, await freshCode(user));
  await expectText(page, '#second-token-error', /code is not right/);
});

test('recovery codes: the count, a new set (copy, download), an old code refused, a new one accepted', async () => {
  const user = await mfaUser(server.url, 'kim');
  const page = await open();
  await signIn(page, user);
  await expectText(page, '#recovery-count', /^You have 10 unused recovery codes\.$/);

  await page.getByRole('button', { name: 'Make new recovery codes' }).click();
  const form = page.locator('#recovery-form');
  await form.getByLabel('Password').fill(PASSWORD);
  await form.getByLabel('Code from your authenticator app').fill(wrongCode(user.secret));
  await form.getByRole('button', { name: 'Make new codes' }).click();
  await expectText(page, '#recovery-token-error', /code is not right/);
  await form.getByLabel('Code from your authenticator app').fill(await freshCode(user));
  await form.getByRole('button', { name: 'Make new codes' }).click();
  await page.locator('#recovery-new').waitFor({ state: 'visible' });
  const codes = (await page.locator('#recovery-codes li').allTextContents()).map((c) => c.trim());
  assert.equal(codes.length, 10);
  assert.equal(codes.filter((c) => user.codes.includes(c)).length, 0, 'all new');
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
  await page.locator('#recovery-new').getByRole('button', { name: 'Copy codes' }).click();
  await expectText(page, '#recovery-codes-status', /copied/);
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), codes.join('\n') + '\n');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.locator('#recovery-new').getByRole('button', { name: 'Download codes' }).click(),
  ]);
  assert.equal(download.suggestedFilename(), 'twofactor-recovery-codes-kim.txt');
  assert.equal(readFileSync(await download.path(), 'utf8'), codes.join('\n') + '\n');
  await shot(page, 'recovery-new');
  await page.getByRole('button', { name: 'I have saved them' }).click();
  assert.equal(await page.locator('#recovery-codes li').count(), 0, 'the codes are gone from the page');
  await expectText(page, '#recovery-status', /old ones no longer work/);
  await expectText(page, '#recovery-count', /^You have 10 unused/);
  await logOut(page);

  // An old code is refused; a new one works once.
  await logIn(page, 'kim');
  await expectView(page, 'second');
  await page.getByRole('button', { name: 'Use a recovery code instead' }).click();
  await view(page, 'second').getByLabel('Recovery code').fill(user.codes[1]);
  await page.getByRole('button', { name: 'Verify' }).click();
  await expectText(page, '#second-token-error', /recovery code is not right/);
  await view(page, 'second').getByLabel('Recovery code').fill(codes[0]);
  await page.getByRole('button', { name: 'Verify' }).click();
  await expectAccount(page, 'kim', 'On');
  await expectText(page, '#flash', /recovery code\. 9 recovery codes left/);
  await expectText(page, '#recovery-count', /^You have 9 unused/);
});

test('after the second step: the few-recovery-codes warning and the phone clock notice', async () => {
  const user = await mfaUser(server.url, 'leo');
  // Seven recovery codes spent through the API: three left.
  for (const code of user.codes.slice(0, 7)) {
    const login = await apiCall(server.url, 'POST', '/login', { username: 'leo', password: PASSWORD });
    const r = await apiCall(server.url, 'POST', '/login-2fa',
      { username: 'leo', token: code, mfa_token: login.body.mfa_token });
    assert.equal(r.status, 200);
  }
  const page = await open();
  await logIn(page, 'leo');
  await expectView(page, 'second');
  await page.getByRole('button', { name: 'Use a recovery code instead' }).click();
  await view(page, 'second').getByLabel('Recovery code').fill(user.codes[7]);
  await page.getByRole('button', { name: 'Verify' }).click();
  await expectAccount(page, 'leo', 'On');
  await expectText(page, '#notice', /^Only 2 recovery codes left\. Make a new set under “Recovery codes” below\.$/);
  assert.equal(await page.locator('#recovery-count').evaluate((el) => el.classList.contains('low')), true);
  await shot(page, 'notice-few-codes');
  await logOut(page);
  assert.equal(await page.locator('#notice').isHidden(), true, 'the notice goes with the session');

  // A code of the next time step: the phone is about 30 s fast.
  await logIn(page, 'leo');
  await expectView(page, 'second');
  if (secondsLeftInStep() < 4) await page.waitForTimeout(secondsLeftInStep() * 1000 + 200);
  user.floor = stepNow() + 1;
  await submitSecondStep(page, totp(user.secret, user.floor));
  await expectAccount(page, 'leo', 'On');
  await expectText(page, '#notice', /Your phone's clock is about 30 s fast\./);
  await expectText(page, '#notice', /Only 2 recovery codes left/);
  await shot(page, 'notice-clock');
});

test('change password: a weak one is refused beside the field; a strong one ends the other session', async () => {
  const user = await mfaUser(server.url, 'mallory');
  const page = await open();
  await signIn(page, user);
  const other = await open();
  await signIn(other, user);
  await expectSessions(page, 1); // loaded before the other sign-in
  await page.getByRole('button', { name: 'Refresh the list' }).click();
  await expectSessions(page, 2);

  await page.getByRole('button', { name: 'Change password' }).click();
  const form = page.locator('#password-form');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'password-current');
  const submit = form.getByRole('button', { name: 'Change password' });
  await form.getByLabel('Current password').fill('not the password');
  await form.getByLabel('New password').fill('password1234');
  await form.getByLabel(/^Code from your authenticator app/).fill(user.codes[0]);
  await submit.click();
  await expectText(page, '#password-current-error', /^Wrong password\.$/);
  await form.getByLabel('Current password').fill(PASSWORD);
  await submit.click();
  await expectText(page, '#password-new-error', /^Password is too weak: /);
  assert.equal(await form.getByLabel('New password').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'password-new');
  await shot(page, 'password-weak');
  const strong = 'velvet otter juggles quietly';
  await form.getByLabel('New password').fill(strong);
  await submit.click();
  await expectText(page, '#password-status', /^Your password is changed\. 1 other session was ended\.$/);
  assert.equal(await form.isHidden(), true);
  await expectSessions(page, 1);
  await shot(page, 'password-changed');

  // The other browser learns it at its next call, and shows the login.
  await other.getByRole('button', { name: 'Refresh the list' }).click();
  await expectView(other, 'login');
  await expectText(other, '#flash', /Your session ended/);
  await shot(other, 'password-changed-other-browser');

  // The new password signs in; the old one does not.
  await logOut(page);
  const login = view(page, 'login');
  await login.getByLabel('Username').fill('mallory');
  await login.getByLabel('Password').fill(PASSWORD);
  await login.getByRole('button', { name: 'Log in' }).click();
  await expectText(page, '#login-password-error', /Wrong username or password/);
  await login.getByLabel('Password').fill(strong);
  await login.getByRole('button', { name: 'Log in' }).click();
  await expectView(page, 'second');
});

test('sessions: both listed, this one marked, the other one ended (phone-sized)', async () => {
  const made = await apiCall(server.url, 'POST', '/signup', { username: 'nina', password: PASSWORD });
  assert.equal(made.status, 201);
  const other = await open();
  await logIn(other, 'nina');
  await expectAccount(other, 'nina', 'Off');
  const page = await open({ viewport: { width: 375, height: 667 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  await logIn(page, 'nina');
  await expectAccount(page, 'nina', 'Off');
  assert.equal(await page.locator('#devices').isHidden(), true, 'no apps without two-step verification');
  assert.equal(await page.locator('#password-token-field').isHidden(), true);
  await expectSessions(page, 2);
  const current = page.locator('#sessions-list > li.current');
  assert.equal(await current.count(), 1);
  assert.match(await current.textContent(), /This session/);
  assert.equal(await current.getByRole('button').count(), 0, 'this session is ended with Log out');
  const first = page.locator('#sessions-list > li').first();
  assert.equal(await first.evaluate((li) => li.classList.contains('current')), true, 'this session first');
  const otherItem = page.locator('#sessions-list > li:not(.current)');
  const text = await otherItem.textContent();
  assert.match(text, /Signed in/);
  assert.match(text, /Expires/);
  assert.match(text, /127\.0\.0\.1/);
  assert.match(text, /Chrome on Linux/);
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 375, `no sideways scrolling (scrollWidth ${width})`);
  await shot(page, 'sessions');

  await otherItem.getByRole('button', { name: /^End session/ }).click();
  await expectText(page, '#sessions-status', /session is ended/);
  await expectSessions(page, 1);
  assert.equal(await page.locator('#sessions-list > li.current').count(), 1);
  await shot(page, 'phone-account-sessions');

  await other.getByRole('button', { name: 'Refresh the list' }).click();
  await expectView(other, 'login');
  await expectText(other, '#flash', /Your session ended/);
});
