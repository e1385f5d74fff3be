// Helpers of the browser suite: the real server (a twofactor binary on port
// 0 with a temporary SQLite file and key), TOTP computed here from the secret
// the page shows, Debian's chromium through playwright-core, and a watch on
// every page for console errors and CSP violations.
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = path.join(here, 'artifacts');
export const PASSWORD = 'correct horse battery staple';
/** First lockout delay given to the server, so a countdown ends in the test. */
export const LOCKOUT_SECONDS = 6;

// ---- the server -------------------------------------------------------------

/** Starts the binary; resolves to {url, stop()} once it prints its address. */
export async function startServer() {
  const bin = process.env.TWOFACTOR_BIN;
  if (!bin) throw new Error('TWOFACTOR_BIN is not set (use tests/browser/run.sh)');
  mkdirSync(ARTIFACTS, { recursive: true });
  const dir = mkdtempSync(path.join(tmpdir(), 'twofactor-browser-'));
  const env = { ...process.env };
  delete env.RUST_LOG;
  const child = spawn(bin, [
    'serve',
    '--bind', '127.0.0.1:0',
    '--database-url', `sqlite://${dir}/db.sqlite`,
    '--encryption-key-file', `${dir}/encryption.key`,
    '--argon2-memory-kib', '1024', '--argon2-iterations', '1',
    '--lockout-base-delay', String(LOCKOUT_SECONDS),
  ], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr.pipe(createWriteStream(path.join(ARTIFACTS, 'server.log')));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no "listening on" line within 60 s')), 60_000);
    child.once('exit', (code) => reject(new Error(`server exited (${code}); see artifacts/server.log`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const m = /^listening on (http:\/\/\S+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  };
  return { url, bin, stop };
}

/** A JSON call to the API from Node (to set up accounts quickly). */
export async function apiCall(base, method, route, body) {
  const resp = await fetch(base + route, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await resp.text();
  return { status: resp.status, headers: resp.headers, body: text ? JSON.parse(text) : null };
}

/** An account with MFA made through the API; returns {username, secret, codes}. */
export async function mfaUser(base, username) {
  const r = await apiCall(base, 'POST', '/signup', { username, password: PASSWORD, enable_mfa: true });
  if (r.status !== 201) throw new Error(`signup of ${username}: ${r.status} ${JSON.stringify(r.body)}`);
  const secret = new URL(r.body.provisioning_uri).searchParams.get('secret');
  return { username, secret, codes: r.body.recovery_codes, floor: null };
}

// ---- TOTP (RFC 6238 / 4226, SHA-1, 6 digits, 30 s) -----------------------------

export function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of text.replace(/[\s=]/g, '').toUpperCase()) {
    const i = alphabet.indexOf(c);
    if (i < 0) throw new Error(`not base32: ${c}`);
    value = ((value << 5) | i) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

export function totp(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32Decode(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const n = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(n).padStart(6, '0');
}

export const stepNow = () => Math.floor(Date.now() / 30_000);

/**
 * A code the server will accept for `user` now: the current step, or the
 * next one when the current step was already used (each step is accepted
 * once: the replay floor). Waits only when even now+1 is used up. Records
 * the step as used; call it right before submitting.
 */
export async function freshCode(user) {
  for (;;) {
    const now = stepNow();
    const step = user.floor === null ? now : Math.max(now, user.floor + 1);
    if (step <= now + 1) {
      user.floor = step;
      return totp(user.secret, step);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** Six digits that are not a valid code anywhere near now. */
export function wrongCode(secret) {
  const now = stepNow();
  const window = new Set([-2, -1, 0, 1, 2].map((o) => totp(secret, now + o)));
  for (let n = 123456; ; n++) {
    const code = String(n % 1_000_000).padStart(6, '0');
    if (!window.has(code)) return code;
  }
}

// ---- the browser ----------------------------------------------------------------

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // playwright gives each launch a fresh, empty --user-data-dir itself.
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

/**
 * A new page in a new context, watched: every console error (but the
 * browser's own line about an expected 4xx answer of the API), page error
 * and CSP violation is collected in `page.problems`.
 */
export async function newPage(browser, options = {}) {
  const context = await browser.newContext({
    viewport: { width: 1000, height: 900 },
    acceptDownloads: true,
    ...options,
  });
  const page = await context.newPage();
  page.problems = [];
  page.on('console', (msg) => {
    const text = msg.text();
    const expected4xx = /^Failed to load resource: the server responded with a status of 4\d\d/.test(text);
    if ((msg.type() === 'error' && !expected4xx) || /Content.Security.Policy/i.test(text)) {
      page.problems.push(`console ${msg.type()}: ${text}`);
    }
  });
  page.on('pageerror', (err) => page.problems.push(`page error: ${err.message}`));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  return page;
}

/** Saves a full-page screenshot as artifacts/NAME.png. */
export async function shot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** Nothing of the session may be left in storage or cookies. */
export async function storageIsEmpty(page) {
  return page.evaluate(() => localStorage.length === 0 && sessionStorage.length === 0 && document.cookie === '');
}
