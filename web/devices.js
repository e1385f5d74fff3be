// The account's authenticator apps (GET/POST/DELETE /me/devices): the list,
// adding one (label + password → QR code and key → its first code), and
// removing one (the password or a current code). While a new app waits for
// its first code, the password stays in memory to take the pending device
// back if the person cancels; it is dropped once the app is confirmed.
import { authed } from './api.js';
import { refreshMe } from './account.js';
import {
  $, clearErrors, factList, kindOf, grouped, onClick, onSubmit, resetForm, showError, timeElement, value,
} from './ui.js';

let adding = null; // {id, label, password}: a pending device on screen
let removing = null; // {id, label}: the device the remove form is about

function status(text) {
  $('devices-status').textContent = text || '';
}

/** Loads and shows the list. */
export async function loadDevices() {
  const r = await authed('GET', '/me/devices');
  if (r.ended) return;
  const list = $('devices-list');
  if (!r.ok) {
    list.replaceChildren();
    $('devices-error').textContent = 'Your authenticator apps could not be loaded: ' + r.data.detail;
    return;
  }
  $('devices-error').textContent = '';
  const active = r.data.devices.filter((d) => d.status === 'active').length;
  list.replaceChildren(...r.data.devices.map((d) => deviceItem(d, active)));
}

function deviceItem(device, active) {
  const li = document.createElement('li');
  li.className = 'card';
  li.dataset.id = String(device.id);
  li.dataset.label = device.label;
  const head = document.createElement('div');
  head.className = 'card-head';
  const name = document.createElement('h3');
  name.className = 'card-title';
  name.textContent = device.label;
  head.append(name);
  if (device.status === 'pending') head.append(tag('Waiting for its first code', 'pending'));
  li.append(head);
  const rows = [
    ['Type', kindOf(device)],
    ['Added', timeElement(device.created_at)],
    ['Last used', device.last_used_at ? timeElement(device.last_used_at) : 'Never'],
  ];
  if (device.status === 'pending' && device.expires_at) rows.push(['Set up before', timeElement(device.expires_at)]);
  li.append(factList(rows));
  const remove = document.createElement('button');
  remove.type = 'button';
  remove.className = 'remove-device';
  remove.textContent = 'Remove';
  remove.setAttribute('aria-label', 'Remove ' + device.label);
  remove.addEventListener('click', () => openRemove(device));
  li.append(remove);
  return li;
}

function tag(text, kind) {
  const span = document.createElement('span');
  span.className = 'tag ' + kind;
  span.textContent = text;
  return span;
}

// ---- add ------------------------------------------------------------------------
function setAddOpen(open) {
  $('add-device-form').hidden = !open;
  $('add-device-open').setAttribute('aria-expanded', String(open));
  if (open) {
    resetForm($('add-device-form'));
    $('add-device-label').focus();
  }
}

onClick('add-device-open', () => {
  closeRemove();
  status('');
  setAddOpen($('add-device-form').hidden);
});

onClick('add-device-cancel', () => {
  setAddOpen(false);
  $('add-device-open').focus();
});

onSubmit('add-device-form', async (form) => {
  clearErrors(form);
  status('');
  const label = value(form, 'label').trim();
  const password = value(form, 'password');
  const r = await authed('POST', '/me/devices', { label, password });
  if (!r.ok) {
    showError(form, r, {
      invalid_credentials: ['password', 'Wrong password.'],
      device_label_taken: ['label', 'You already have an app with this name. Choose another one.'],
      too_many_devices: [null, 'You have 10 authenticator apps, the most there can be. Remove one first.'],
    });
    return;
  }
  setAddOpen(false);
  adding = { id: r.data.id, label, password };
  showNewDevice(r.data);
  loadDevices();
});

function showNewDevice(d) {
  $('new-device-title').textContent = 'Set up “' + d.label + '”';
  const img = $('new-device-qr');
  img.src = d.qr_code; // a data:image/png URI
  img.alt = 'QR code to add this account to the app “' + d.label + '”';
  $('new-device-link').href = d.provisioning_uri;
  $('new-device-kind').textContent = kindOf(d);
  $('new-device-secret').textContent = grouped(d.secret);
  resetForm($('confirm-device-form'));
  $('add-device-open').hidden = true;
  $('new-device').hidden = false;
  $('new-device-title').focus();
}

/** Forgets the new device's key, QR code and the password. */
function hideNewDevice() {
  adding = null;
  $('new-device').hidden = true;
  $('new-device-qr').removeAttribute('src');
  $('new-device-link').removeAttribute('href');
  $('new-device-secret').textContent = '';
  resetForm($('confirm-device-form'));
  $('add-device-open').hidden = false;
}

onSubmit('confirm-device-form', async (form) => {
  clearErrors(form);
  if (!adding) return;
  const { id, label } = adding;
  const r = await authed('POST', '/me/devices/' + id + '/confirm', { token: value(form, 'token').trim() });
  if (!r.ok) {
    if (r.data.code === 'device_not_found') {
      hideNewDevice();
      await loadDevices();
      status('The 15 minutes to set up “' + label + '” ran out. Add it again.');
      $('add-device-open').focus();
      return;
    }
    showError(form, r, {
      invalid_code: ['token', 'That code is not right. Type the code the new app shows now.'],
      authenticator_ignored_parameters: ['token', 'The app made this code the usual way (SHA1, 6 digits, 30 s) ' +
        'instead of as asked. Type the key by hand, or use another app.'],
    });
    return;
  }
  hideNewDevice();
  await loadDevices();
  status('“' + label + '” is set up: its codes now work for signing in.');
  $('add-device-open').focus();
  if (r.data.recovery_codes) await refreshMe();
});

onClick('new-device-cancel', async () => {
  const pending = adding;
  hideNewDevice();
  $('add-device-open').focus();
  if (!pending) return;
  // Take the pending device back now, rather than let its name be taken
  // for 15 minutes.
  const r = await authed('DELETE', '/me/devices/' + pending.id, { password: pending.password });
  if (r.ended) return;
  await loadDevices();
  status(r.ok || r.status === 404 ? '“' + pending.label + '” was not added.' : '');
});

// ---- remove ----------------------------------------------------------------------------
function openRemove(device) {
  setAddOpen(false);
  status('');
  removing = { id: device.id, label: device.label };
  const form = $('remove-device-form');
  resetForm(form);
  $('remove-device-title').textContent = 'Remove “' + device.label + '”';
  form.hidden = false;
  $('remove-device-title').focus();
}

function closeRemove() {
  removing = null;
  resetForm($('remove-device-form'));
  $('remove-device-form').hidden = true;
}

onClick('remove-device-cancel', () => {
  const id = removing && removing.id;
  closeRemove();
  const button = document.querySelector('#devices-list li[data-id="' + id + '"] button');
  (button || $('add-device-open')).focus();
});

onSubmit('remove-device-form', async (form) => {
  clearErrors(form);
  if (!removing) return;
  const password = value(form, 'password');
  const token = value(form, 'token').trim();
  if (!password && !token) {
    showError(form, { data: { code: 'proof_required' } }, {
      proof_required: ['password', 'Type your password, or a code from one of your apps.'],
    });
    return;
  }
  const body = {};
  if (password) body.password = password;
  if (token) body.token = token;
  const { id, label } = removing;
  const r = await authed('DELETE', '/me/devices/' + id, body);
  if (!r.ok) {
    showError(form, r, {
      invalid_credentials: ['password', 'Wrong password.'],
      invalid_otp: ['token', 'That code is not right. Type the code one of your apps shows now.'],
      proof_required: ['password', 'Type your password, or a code from one of your apps.'],
      last_device: [null, '“' + label + '” is your only authenticator app, so it cannot be removed: ' +
        'you would have no way to get a code. Add another app first, or turn off two-step verification below.'],
      device_not_found: [null, 'This app is already removed.'],
    });
    if (r.data.code === 'device_not_found') loadDevices();
    return;
  }
  closeRemove();
  await loadDevices();
  status('“' + label + '” is removed: its codes no longer work.');
  $('add-device-open').focus();
});

/** Drops everything of this module from the page and from memory. */
export function clearDevices() {
  hideNewDevice();
  closeRemove();
  setAddOpen(false);
  status('');
  $('devices-list').replaceChildren();
}
