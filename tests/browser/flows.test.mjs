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
