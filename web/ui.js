// Page helpers: views and focus, messages, errors in words beside their
// fields, lockout countdowns, busy buttons, recovery-code lists, dates.

export const $ = (id) => document.getElementById(id);

const VIEWS = ['login', 'second', 'signup', 'enroll', 'account'];
const timers = new Map(); // form -> lockout countdown interval

/** Shows one view and moves the focus into it. */
export function show(name, focusId) {
  for (const v of VIEWS) $('view-' + v).hidden = v !== name;
  document.title = $(name + '-title').textContent + ' · twofactor';
  const target = $(focusId || name + '-title');
  if (target) target.focus();
}

/** A success message at the top of the page (a polite live region). */
export function flash(text) {
  $('flash').textContent = text || '';
}

/** A warning at the top of the page: few recovery codes, a clock off. */
export function notice(lines) {
  const box = $('notice');
  const list = (lines || []).filter(Boolean);
  // Emptied, not hidden: a live region that stays in the page is announced.
  box.replaceChildren(...list.map((line) => {
    const p = document.createElement('p');
    p.textContent = line;
    return p;
  }));
}

// ---- errors -------------------------------------------------------------------
export function clearErrors(form) {
  for (const el of form.querySelectorAll('.field-error, .form-error')) el.textContent = '';
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
}

export function fieldError(form, name, text) {
  const input = form.elements.namedItem(name);
  if (!input || !input.id || input.closest('[hidden]')) return false;
  const slot = $(input.id + '-error');
  if (!slot) return false;
  slot.textContent = text;
  input.setAttribute('aria-invalid', 'true');
  input.focus();
  if (typeof input.select === 'function') input.select();
  return true;
}

export function formError(form, text) {
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
 * words: {invalid_otp: ['token', 'That code is not right.']}; a field
 * name of null puts the words at the form's foot.
 */
export function showError(form, result, fields) {
  clearErrors(form);
  if (result.ended) return; // the page went back to the login
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
  if (mapped && mapped[0] && fieldError(form, mapped[0], mapped[1] || detail)) return;
  if (mapped && !mapped[0]) {
    formError(form, mapped[1] || detail);
    return;
  }
  const words = {
    busy: 'The server is busy. Try again in a moment.',
    unavailable: 'The service is unavailable right now. Try again in a moment.',
    internal: 'Something went wrong on the server. Try again.',
  };
  formError(form, words[code] || detail);
}

/** Disables the form's submit button and counts down `seconds`. */
export function lockForm(form, seconds) {
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

export function onSubmit(id, handler) {
  const form = $(id);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    busy(form, () => handler(form));
  });
}

export function onClick(id, handler) {
  $(id).addEventListener('click', handler);
}

export const value = (form, name) => form.elements.namedItem(name).value;

/** Empties a form: its fields and its errors. */
export function resetForm(form) {
  clearErrors(form);
  form.reset();
}

// ---- secrets and recovery codes ---------------------------------------------------
/** A base32 key in groups of four, for typing by hand. */
export const grouped = (secret) => (secret.match(/.{1,4}/g) || []).join(' ');

/** The key and the code parameters of an otpauth:// URI. */
export function parseUri(uri) {
  let params;
  try {
    params = new URL(uri).searchParams;
  } catch (e) {
    params = new URLSearchParams();
  }
  return {
    secret: params.get('secret') || '',
    algorithm: params.get('algorithm') || 'SHA1',
    digits: params.get('digits') || '6',
    period: params.get('period') || '30',
  };
}

/** "time-based, 6 digits" (+ the period and algorithm when not the usual). */
export function kindOf({ algorithm, digits, period }) {
  return 'time-based, ' + digits + ' digits' +
    (String(period) === '30' ? '' : ', every ' + period + ' s') +
    (!algorithm || algorithm === 'SHA1' ? '' : ', ' + algorithm);
}

/**
 * Fills the <ol id=`prefix`> with `codes`, and wires its Copy and Download
 * buttons (`prefix`-copy, `prefix`-download, status in `prefix`-status).
 * Returns a function that forgets the codes.
 */
export function codesPanel(prefix, codes, filename) {
  const status = $(prefix + '-status');
  $(prefix).replaceChildren(...codes.map((c) => {
    const li = document.createElement('li');
    const code = document.createElement('code');
    code.textContent = c;
    li.append(code);
    return li;
  }));
  status.textContent = '';
  const text = codes.join('\n') + '\n';
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      status.textContent = 'The recovery codes are copied.';
    } catch (e) {
      status.textContent = 'Copying is not allowed here: select the codes and copy them, or download them.';
    }
  };
  const download = () => {
    const url = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = filename;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    status.textContent = 'The recovery codes are downloaded.';
  };
  $(prefix + '-copy').onclick = copy;
  $(prefix + '-download').onclick = download;
  return () => {
    $(prefix).replaceChildren();
    $(prefix + '-copy').onclick = null;
    $(prefix + '-download').onclick = null;
    status.textContent = '';
  };
}

// ---- dates ----------------------------------------------------------------------------
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** A <time> element for Unix seconds, in the reader's locale. */
export function timeElement(seconds) {
  const t = document.createElement('time');
  const date = new Date(seconds * 1000);
  t.dateTime = date.toISOString();
  t.textContent = dateFormat.format(date);
  return t;
}

/** A <dl> of [term, description] rows; a description may be a node. */
export function factList(rows) {
  const dl = document.createElement('dl');
  dl.className = 'facts small';
  for (const [term, description] of rows) {
    const dt = document.createElement('dt');
    dt.textContent = term;
    const dd = document.createElement('dd');
    dd.append(description);
    dl.append(dt, dd);
  }
  return dl;
}
