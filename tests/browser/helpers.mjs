// Shared by the browser tests of the pages opened from mail (accept-invite, reset-password,
// verify-email). They run in headless Chromium against a live local stack:
//
//   LATCHKEY_API_URL=http://127.0.0.1:9100 LATCHKEY_MOTO_URL=http://127.0.0.1:5000 \
//   BOOTSTRAP_ADMIN_EMAIL=... BOOTSTRAP_ADMIN_PASSWORD=... \
//     node --test --test-concurrency=1 tests/browser/
//
// Optional: CHROMIUM_PATH (default /usr/bin/chromium, Debian's package).
// Every test makes its own tenant (b-<random>) and people (<random>@example.test), reads the
// mail from moto's /moto-api/data.json, and opens the mailed link with its origin replaced by
// LATCHKEY_API_URL's.
import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: the browser tests run against a live local stack (see the top of ${import.meta.url})`);
  return value;
}
export const API = new URL(env('LATCHKEY_API_URL')).origin;
export const MOTO = env('LATCHKEY_MOTO_URL').replace(/\/+$/, '');
export const ADMIN = { email: env('BOOTSTRAP_ADMIN_EMAIL'), password: env('BOOTSTRAP_ADMIN_PASSWORD') };
export const SHOTS = new URL('./screenshots/', import.meta.url).pathname;

export const rand = () => randomBytes(5).toString('hex');
export const passphrase = () => `amber ${rand()} lantern orbit`;
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const newEmail = () => `${rand()}@example.test`;

// Set by useStack()'s `before` hook: the admin's session and the browser.
export const stack = { adminToken: null, browser: null };

// --- the HTTP API --------------------------------------------------------------------------

export async function api(method, path, body, token) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  return { status: res.status, data };
}

export async function expectStatus(want, promise, what) {
  const res = await promise;
  assert.equal(res.status, want, `${what}: HTTP ${res.status} ${JSON.stringify(res.data)}`);
  return res.data;
}

// Admin calls, with the bootstrap admin's session.
export const adminApi = (method, path, body) => api(method, path, body, stack.adminToken);

export const signIn = (tenant, email, password) => api('POST', '/v1/sessions', { tenant, email, password });

export const tokenOf = (link) => new URL(link).hash.replace(/^#token=/, '');

export async function newTenant() {
  const subdomain = `b-${rand()}`;
  const tenant = await expectStatus(201, adminApi('POST', '/v1/tenants', { name: `Browser ${subdomain}`, subdomain }), 'create tenant');
  return tenant.id;
}

async function invite(tenant, email, sendEmail, role = 'member') {
  const out = await expectStatus(200, adminApi('POST', `/v1/tenants/${tenant}/invitations`,
    { invitations: [{ email, role }], send_email: sendEmail }), 'invite');
  assert.equal(out.results.length, 1);
  assert.equal(out.results[0].status, 'invited', JSON.stringify(out.results[0]));
  assert.equal(out.results[0].email_sent, sendEmail, JSON.stringify(out.results[0]));
  return out.results[0].user_id;
}

// A fresh tenant with one invited person (a `member` unless told) and the accept-invite link
// mailed to them.
export async function invitee(role = 'member') {
  const tenant = await newTenant();
  const email = newEmail();
  const userId = await invite(tenant, email, true, role);
  const link = await mailedLink(email, 'accept-invite');
  return { tenant, email, userId, link, token: tokenOf(link) };
}

// A fresh tenant with one active person who accepted the mailed invitation (so their address
// is verified), and the password they set.
export async function activeUser(role = 'member') {
  const inv = await invitee(role);
  const password = passphrase();
  await expectStatus(200, api('POST', '/v1/invitations/accept', { token: inv.token, password }), 'accept the invitation');
  return { tenant: inv.tenant, email: inv.email, userId: inv.userId, password };
}

// A fresh tenant with one active person whose address is NOT verified: invited without mail,
// they joined through a copied access link (POST /v1/users/{id}/access-link).
export async function unverifiedUser() {
  const tenant = await newTenant();
  const email = newEmail();
  const userId = await invite(tenant, email, false);
  const link = await expectStatus(200, adminApi('POST', `/v1/users/${userId}/access-link`), 'access link');
  assert.equal(link.kind, 'invitation', JSON.stringify(link));
  assert.match(link.url, /\/accept-invite#token=/);
  const password = passphrase();
  await expectStatus(200, api('POST', '/v1/invitations/accept', { token: tokenOf(link.url), password }), 'accept through the copied link');
  const user = await getUser(userId);
  assert.equal(user.status, 'active', JSON.stringify(user));
  assert.equal(user.email_verified, false, JSON.stringify(user));
  return { tenant, email, userId, password };
}

export const getUser = (id) => expectStatus(200, adminApi('GET', `/v1/users/${id}`), `GET /v1/users/${id}`);

// --- the mail, as moto keeps it ------------------------------------------------------------

const decodeEntities = (s) => s
  .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
  .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d)))
  .replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;|&apos;/g, "'");

// The link to `page` in the newest mail to `email` that holds one, re-origined to LATCHKEY_API_URL.
export async function mailedLink(email, page, timeoutMs = 15000) {
  const pattern = new RegExp(`https?:\\/\\/[^\\s"'<>\\\\]*?\\/${page}#token=[A-Za-z0-9._-]+`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(`${MOTO}/moto-api/data.json`);
    assert.equal(res.status, 200, 'moto data.json');
    const data = await res.json();
    const messages = (data.ses && data.ses.Message) || (data.sesv2 && data.sesv2.Message) || [];
    const mine = messages.filter((m) => {
      const to = (m.destinations && (m.destinations.ToAddresses || m.destinations)) || [];
      return [].concat(to).some((a) => String(a).toLowerCase().includes(email));
    });
    for (const m of mine.reverse()) {
      // body is a string or {html, text}: search the whole message, HTML-escaped or not.
      const found = decodeEntities(JSON.stringify(m)).match(pattern);
      if (found) {
        const link = new URL(found[0]);
        const api = new URL(API);
        link.protocol = api.protocol;
        link.host = api.host;
        return link.href;
      }
    }
    if (Date.now() > deadline) throw new Error(`no mail with a ${page} link to ${email} (${mine.length} message(s) to it)`);
    await sleep(250);
  }
}

// --- the browser ---------------------------------------------------------------------------

// Call once at the top of a test file: signs the admin in and starts Chromium for its tests.
export function useStack() {
  before(async () => {
    const session = await expectStatus(200, signIn('admin', ADMIN.email, ADMIN.password), 'admin sign-in');
    stack.adminToken = session.token;
    stack.browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  after(async () => { if (stack.browser) await stack.browser.close(); });
}

// A fresh context per test; every request the page makes is recorded.
export async function openPage(t, url) {
  const context = await stack.browser.newContext();
  t.after(() => context.close());
  const page = await context.newPage();
  const requests = [];
  const consoleErrors = [];
  page.on('request', (r) => requests.push({ method: r.method(), url: r.url() }));
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  const response = await page.goto(url);
  assert.equal(response.status(), 200, `GET ${url}`);
  return { page, context, requests, consoleErrors };
}

export const apiRequests = (requests) => requests.filter((r) => new URL(r.url).pathname.startsWith('/v1/'));

// Every request went to the stack's own origin, and none was refused by the CSP.
export function assertSelfContained(requests, consoleErrors) {
  for (const r of requests) assert.equal(new URL(r.url).origin, API, `request to another origin: ${r.method} ${r.url}`);
  assert.deepEqual(consoleErrors.filter((e) => /Content Security Policy|Refused to/i.test(e)), [], 'CSP violations');
}

export const requestLines = (requests) => requests.map((r) => `${r.method} ${new URL(r.url).pathname}`);
