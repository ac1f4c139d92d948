// DEV ONLY — NOT USED BY THE REAL TESTS.
//
// A stand-in for the `pages` Lambda and for just enough of the API and of moto to work on the
// pages opened from mail (shared/templates/pages/*.html) without the real stack:
//
//   - GET/HEAD /accept-invite, /reset-password, /verify-email: the template with {{ nonce }}
//     substituted and the production headers (Content-Security-Policy, no-store, no-referrer).
//
//   - Token-named FAKES of the three POSTs the pages make, answering from the token's value:
//       POST /v1/invitations/accept, POST /v1/password/reset {token, password}:
//         ok → 200 {user_id, tenant}      slow → the same after 1.5 s
//         expired / used / invalid → 410/409/400 problem with that token_* code
//         ratelimited → 429 rate_limited   boom → 500 with a detail
//         weak → weak_password unless the password contains a space
//         html → 502 with an HTML body (not JSON)
//       POST /v1/email/verify {token}:
//         ok → 200 kind "verified"   changed → 200 kind "email_changed"   slow → "verified" after 1.5 s
//         taken → 409 already_exists; expired / used / invalid / ratelimited / boom / html as above
//
//   - A small STATEFUL fake of the API, so the real browser tests can be dry-run against it:
//       POST /v1/sessions, POST /v1/tenants, POST /v1/tenants/{t}/invitations,
//       POST /v1/invitations/accept, GET /v1/users/{id}, POST /v1/users/{id}/access-link,
//       POST /v1/users/{id}/password-reset, POST /v1/password/forgot, POST /v1/password/reset,
//       POST /v1/users/{id}/resend-verification, POST /v1/users/{id}/email-change,
//       POST /v1/email/verify,
//     with tokens `<user id>.<random>` that are single-use and superseded by a newer one of the
//     same purpose, and the mail kept in memory (HTML-escaped like minijinja does) and served as
//     moto does at GET /moto-api/data.json (ses.Message).
//
//   node tests/browser/dev/fake-server.mjs [port]   (default 9000)
//   then open http://127.0.0.1:9000/reset-password#token=ok, or dry-run the real tests:
//   LATCHKEY_API_URL=http://127.0.0.1:9000 LATCHKEY_MOTO_URL=http://127.0.0.1:9000 \
//   BOOTSTRAP_ADMIN_EMAIL=admin@example.test BOOTSTRAP_ADMIN_PASSWORD=dev-admin-password \
//     node --test --test-concurrency=1 tests/browser/
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const PAGES = ['accept-invite', 'reset-password', 'verify-email'];
export const templatePath = (page) =>
  fileURLToPath(new URL(`../../../shared/templates/pages/${page}.html`, import.meta.url));

// Read on every request, so an edited template shows on reload.
// A tiny stand-in for the server's minijinja: `{% extends "base.html" %}` with named blocks.
export function assemble(page) {
  const source = readFileSync(templatePath(page), 'utf8');
  const parent = /^\{% extends "([\w-]+)\.html" %\}/.exec(source);
  if (!parent) return source;
  const blocks = {};
  for (const m of source.matchAll(/\{% block (\w+) %\}([\s\S]*?)\{% endblock %\}/g)) blocks[m[1]] = m[2];
  return readFileSync(templatePath(parent[1]), 'utf8').replace(/\{% block (\w+) %\}\{% endblock %\}/g, (_, name) => blocks[name] ?? '');
}

export function render(nonce, page = 'accept-invite') {
  const html = assemble(page).replaceAll('{{ nonce }}', nonce);
  if (/\{\{|\{%|\{#/.test(html)) throw new Error(`${page}.html uses more than {{ nonce }}`);
  return html;
}

const problem = (status, code, title, detail) => ({
  status, body: { type: `https://latchkey.dev/problems/${code}`, title, status, detail, code },
});
const unauthorized = () => problem(401, 'unauthorized', 'Authentication required', 'Sign in first.');
const notFound = (what) => problem(404, 'not_found', 'Not found', `No such ${what}.`);
const tokenInvalid = () => problem(400, 'token_invalid', 'The link is not valid', 'This link is not valid any more; a newer one may have been sent.');
const tokenUsed = () => problem(409, 'token_used', 'The link has already been used', 'This link has already been used.');

// --- token-named fakes -----------------------------------------------------------------------

function fakeByToken(endpoint, token, password) {
  const verify = endpoint === '/v1/email/verify';
  const done = (kind, extra = {}) => ({
    status: 200,
    body: verify
      ? { user_id: 'u-123', tenant: 'acme', email: kind === 'email_changed' ? 'ada.new@acme.test' : 'ada@acme.test', kind }
      : { user_id: 'u-123', tenant: 'acme', ...extra },
  });
  switch (token) {
    case 'ok': case 'slow': return done('verified');
    case 'changed': return verify ? done('email_changed') : tokenInvalid();
    case 'taken': return verify
      ? problem(409, 'already_exists', 'The user already exists', 'That address now belongs to another account.')
      : tokenInvalid();
    case 'expired': return problem(410, 'token_expired', 'The link has expired', 'The link expired.');
    case 'used': return tokenUsed();
    case 'invalid': return tokenInvalid();
    case 'ratelimited': return problem(429, 'rate_limited', 'Too many requests', 'Retry later.');
    case 'boom': return problem(500, 'internal', 'Internal error', 'Request id 42 failed.');
    case 'weak':
      if (verify) return tokenInvalid();
      return password.includes(' ')
        ? { status: 200, body: { user_id: 'u-124', tenant: 'acme' } }
        : problem(400, 'weak_password', 'The password is too weak', 'This password appears in a list of leaked passwords. Choose another one.');
    default: return tokenInvalid();
  }
}

// --- the stateful fake -----------------------------------------------------------------------

const PUBLIC_BASE = 'http://public.example.invalid';
const tenants = new Set(['admin']);
const users = new Map();     // id → {id, tenant, email, role, status, email_verified, password, viaLink, pending_email}
const emails = new Map();    // lower-cased email → user id (one account per address)
const tokens = new Map();    // token → {purpose, userId, used}
const sessions = new Map();  // session token → {userId, version}; a reset bumps the user's version
const mail = [];             // moto's ses.Message
const escapeHtml = (s) => s.replace(/[&<>"'/]/g, (c) => `&#x${c.charCodeAt(0).toString(16)};`);
const norm = (e) => String(e || '').trim().toLowerCase();
const later = (s) => new Date(Date.now() + s * 1000).toISOString();

function addUser(tenant, email, role, status) {
  const id = `u${randomBytes(6).toString('hex')}`;
  const user = { id, tenant, email: norm(email), role, status, email_verified: false, password: null, viaLink: false, pending_email: null, slots: {}, sessionVersion: 0 };
  users.set(id, user);
  emails.set(user.email, id);
  return user;
}
const admin = addUser('admin', 'admin@example.test', 'team_admin', 'active');
admin.password = 'dev-admin-password';
admin.email_verified = true;

// A new token of a purpose supersedes the user's previous one of that purpose.
function issue(user, purpose) {
  if (user.slots[purpose]) tokens.delete(user.slots[purpose]);
  const token = `${user.id}.${randomBytes(32).toString('base64url')}`;
  tokens.set(token, { purpose, userId: user.id, used: false });
  user.slots[purpose] = token;
  return token;
}
// → {user, entry} or a problem; `purposes` are the ones this endpoint may spend.
function lookup(token, purposes) {
  const entry = tokens.get(String(token || ''));
  if (!entry || !purposes.includes(entry.purpose)) return { problem: tokenInvalid() };
  if (entry.used) return { problem: tokenUsed() };
  return { entry, user: users.get(entry.userId) };
}

function send(to, subject, page, token) {
  const link = `${PUBLIC_BASE}/${page}#token=${token}`;
  mail.push({
    id: randomBytes(8).toString('hex'), source: 'no-reply@example.test', destinations: { ToAddresses: [to] },
    subject, body: { html: `<p><a href="${escapeHtml(link)}">${escapeHtml(subject)}</a></p>`, text: `Open ${link}` },
  });
}

const view = (u) => ({
  id: u.id, email: u.email, role: u.role, status: u.status, email_verified: u.email_verified, tenant: u.tenant,
});
const weak = (password) => [...String(password || '')].length < 12
  ? problem(400, 'weak_password', 'The password is too weak', 'Use at least 12 characters.') : null;

// The signed-in user behind `authorization`, if the session is still good.
function callerOf(auth) {
  const m = /^Bearer (\S+)$/.exec(auth || '');
  const session = m && sessions.get(m[1]);
  const user = session && users.get(session.userId);
  return user && user.status === 'active' && user.sessionVersion === session.version ? user : null;
}
const manages = (caller, tenant) => caller.tenant === 'admin'
  ? ['team_admin', 'admin'].includes(caller.role)
  : caller.role === 'admin' && caller.tenant === tenant;

function fakeApi(method, path, body, auth) {
  const caller = callerOf(auth);
  const isAdmin = !!caller && caller.tenant === 'admin' && manages(caller, 'admin');
  if (method === 'POST' && path === '/v1/sessions') {
    const user = users.get(emails.get(norm(body.email)));
    if (!user || user.tenant !== body.tenant || user.status !== 'active' || user.password !== body.password) {
      return problem(401, 'invalid_credentials', 'Invalid credentials', 'Wrong email or password.');
    }
    const token = `dev-session-${randomBytes(12).toString('hex')}`;
    sessions.set(token, { userId: user.id, version: user.sessionVersion });
    return { status: 200, body: { token, expires_at: later(3600) } };
  }
  if (method === 'POST' && path === '/v1/tenants') {
    if (!caller) return unauthorized();
    if (!isAdmin) return problem(403, 'forbidden', 'Not allowed', 'Only admins of tenant admin.');
    if (!/^[a-z0-9-]{3,40}$/.test(body.subdomain || '')) return problem(400, 'invalid_tenant', 'Invalid tenant', 'Bad subdomain.');
    if (tenants.has(body.subdomain)) return problem(409, 'tenant_exists', 'Exists', 'Taken.');
    tenants.add(body.subdomain);
    return { status: 201, body: { id: body.subdomain, name: body.name, subdomain: body.subdomain } };
  }
  let m = path.match(/^\/v1\/tenants\/([a-z0-9-]+)\/invitations$/);
  if (method === 'POST' && m) {
    if (!caller) return unauthorized();
    if (!tenants.has(m[1]) || !manages(caller, m[1])) return notFound('tenant');
    const results = (body.invitations || []).map(({ email, role }) => {
      if (emails.has(norm(email))) return { email, status: 'rejected', error: { code: 'already_exists', detail: 'One account per email address.' } };
      const user = addUser(m[1], email, role || 'member', 'invited');
      const token = issue(user, 'invite');
      if (body.send_email) send(user.email, `You're invited to ${m[1]}`, 'accept-invite', token);
      return { email, status: 'invited', user_id: user.id, expires_at: later(7 * 86400), email_sent: !!body.send_email };
    });
    return { status: 200, body: { results } };
  }
  if (method === 'POST' && path === '/v1/password/forgot') {
    const user = users.get(emails.get(norm(body.email)));
    if (user && user.status === 'active' && user.tenant === body.tenant) {
      send(user.email, 'Reset your password', 'reset-password', issue(user, 'reset'));
    }
    return { status: 202, body: { detail: 'If an account with this address exists in this tenant, a reset link is on its way.' } };
  }
  if (method === 'POST' && (path === '/v1/invitations/accept' || path === '/v1/password/reset' || path === '/v1/email/verify')) {
    if (!tokens.has(body.token)) return null;   // not one of ours: a token-named fake, or token_invalid
    const purposes = { '/v1/invitations/accept': ['invite'], '/v1/password/reset': ['reset'], '/v1/email/verify': ['verify', 'email_change'] }[path];
    const { problem: p, entry, user } = lookup(body.token, purposes);
    if (p) return p;
    if (path === '/v1/email/verify') {
      if (entry.purpose === 'email_change') {
        const owner = emails.get(user.pending_email);
        if (owner && owner !== user.id) return problem(409, 'already_exists', 'The user already exists', 'That address now belongs to another account.');
        emails.delete(user.email);
        user.email = user.pending_email;
        user.pending_email = null;
        emails.set(user.email, user.id);
      }
      entry.used = true;
      user.email_verified = true;
      return { status: 200, body: { user_id: user.id, tenant: user.tenant, email: user.email, kind: entry.purpose === 'email_change' ? 'email_changed' : 'verified' } };
    }
    const w = weak(body.password);
    if (w) return w;
    entry.used = true;
    user.password = body.password;
    user.sessionVersion += 1;   // signed out everywhere
    if (path === '/v1/invitations/accept') {
      user.status = 'active';
      user.email_verified = !user.viaLink;   // a copied link proves nothing about the mailbox
    }
    return { status: 200, body: { user_id: user.id, tenant: user.tenant } };
  }
  m = path.match(/^\/v1\/users\/([^/]+)(?:\/([a-z-]+))?$/);
  if (m) {
    if (!caller) return unauthorized();
    const user = users.get(m[1]);
    if (!user || !manages(caller, user.tenant)) return notFound('user');
    const action = `${method} ${m[2] || ''}`;
    const notActive = () => problem(409, 'user_not_active', 'The user has not accepted the invitation yet', 'Resend the invitation.');
    switch (action) {
      case 'GET ': return { status: 200, body: view(user) };
      case 'POST access-link': {
        if (user.status === 'active') {
          return { status: 200, body: { url: `${PUBLIC_BASE}/reset-password#token=${issue(user, 'reset')}`, expires_at: later(3600), kind: 'password_reset' } };
        }
        user.viaLink = true;
        user.status = 'invited';
        return { status: 200, body: { url: `${PUBLIC_BASE}/accept-invite#token=${issue(user, 'invite')}`, expires_at: later(7 * 86400), kind: 'invitation' } };
      }
      case 'POST password-reset':
        if (user.status !== 'active') return notActive();
        send(user.email, 'Reset your password', 'reset-password', issue(user, 'reset'));
        return { status: 202, body: { expires_at: later(3600), email_sent: true } };
      case 'POST resend-verification':
        if (user.status !== 'active') return notActive();
        if (user.email_verified) return problem(409, 'already_verified', 'The address is already verified', 'Nothing to confirm.');
        send(user.email, 'Confirm your email address', 'verify-email', issue(user, 'verify'));
        return { status: 202, body: { expires_at: later(86400), email_sent: true } };
      case 'POST email-change': {
        if (user.status !== 'active') return notActive();
        const next = norm(body.new_email);
        if (!/^[^@\s]+@[^@\s]+$/.test(next)) return problem(400, 'invalid_email', 'Invalid email address', 'Not an email address.');
        if (next === user.email) return problem(400, 'validation_failed', 'The request is not valid', "That is the user's current address.");
        if (emails.has(next)) return problem(409, 'already_exists', 'The user already exists', 'Another account already uses this address.');
        user.pending_email = next;
        send(next, 'Confirm your new sign-in address', 'verify-email', issue(user, 'email_change'));
        return { status: 202, body: { expires_at: later(86400), email_sent: true } };
      }
      default: return problem(405, 'method_not_allowed', 'Method not allowed', action);
    }
  }
  return null;
}

// --- the server ------------------------------------------------------------------------------

export function startFakeServer(port = 9000, host = '127.0.0.1') {
  const requests = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url, `http://${req.headers.host}`);
    requests.push(`${req.method} ${url.pathname}`);
    if (url.pathname === '/moto-api/data.json') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ ses: { Message: mail } }));
    }
    if (url.pathname.startsWith('/v1/')) {
      let raw = '';
      req.on('data', (c) => { raw += c; });
      req.on('end', () => {
        let body = {};
        try { body = JSON.parse(raw); } catch { /* empty */ }
        const out = fakeApi(req.method, url.pathname, body || {}, req.headers.authorization);
        if (!out) return fallback(req, res, url, body);
        res.writeHead(out.status, { 'content-type': out.status < 300 ? 'application/json' : 'application/problem+json' });
        res.end(JSON.stringify(out.body));
      });
      return;
    }
    return fallback(req, res, url, null);
  });
  return new Promise((resolve) => server.listen(port, host, () => resolve({ server, requests, url: `http://${host}:${server.address().port}` })));
}

const FAKED = ['/v1/invitations/accept', '/v1/password/reset', '/v1/email/verify'];

// The pages themselves, and the token-named fakes of the pages' POSTs.
function fallback(req, res, url, parsed) {
  const page = url.pathname.replace(/\/+$/, '').slice(1);
  if (PAGES.includes(page) && (req.method === 'GET' || req.method === 'HEAD')) {
    const nonce = randomBytes(16).toString('base64url');
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'referrer-policy': 'no-referrer',
      'x-frame-options': 'DENY',
      'x-content-type-options': 'nosniff',
      'content-security-policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'`,
    });
    return res.end(req.method === 'HEAD' ? undefined : render(nonce, page));
  }
  if (FAKED.includes(url.pathname) && req.method === 'POST') {
    const body = parsed || {};
    if (body.token === 'html') {
      res.writeHead(502, { 'content-type': 'text/html' });
      return res.end('<html><body>Bad gateway</body></html>');
    }
    const out = fakeByToken(url.pathname, body.token, String(body.password || ''));
    const reply = () => {
      res.writeHead(out.status, { 'content-type': out.status === 200 ? 'application/json' : 'application/problem+json' });
      res.end(JSON.stringify(out.body));
    };
    return body.token === 'slow' ? setTimeout(reply, 1500) : reply();
  }
  res.writeHead(404, { 'content-type': 'application/problem+json' });
  res.end(JSON.stringify({ type: 'about:blank', title: 'Not found', status: 404, code: 'not_found' }));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { url } = await startFakeServer(Number(process.argv[2] || 9000));
  console.log(`DEV fake server on ${url}: ${PAGES.map((p) => `/${p}#token=ok`).join(', ')}`);
  console.log('tokens: ok slow expired used invalid ratelimited boom weak html; on /verify-email also changed taken');
}
