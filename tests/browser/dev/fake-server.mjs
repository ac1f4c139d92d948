// DEV ONLY — NOT USED BY THE REAL TESTS.
//
// A stand-in for the `pages` and `accept` Lambdas, to work on
// shared/templates/pages/accept-invite.html without the real stack:
//   - GET/HEAD /accept-invite: the template with {{ nonce }} substituted and the
//     production Content-Security-Policy header;
//   - POST /v1/invitations/accept: a FAKE that answers from the token's value:
//       ok → 200 {user_id, tenant}      slow → the same after 1.5 s
//       expired / used / invalid → 410/409/400 problem with that token_* code
//       ratelimited → 429 rate_limited   boom → 500 with a detail
//       weak → weak_password unless the password contains a space
//       html → 502 with an HTML body (not JSON)
//     and any token issued by the fake invitations below is checked for real
//     (unknown → token_invalid, second use → token_used);
//   - a FAKE of just enough of the rest of the API and of moto to dry-run
//     accept-invite.test.mjs: POST /v1/sessions, POST /v1/tenants,
//     POST /v1/tenants/{id}/invitations (mail kept in memory, HTML-escaped like
//     minijinja does), GET /moto-api/data.json (ses.Message).
//
//   node tests/browser/dev/fake-server.mjs [port]   (default 9000)
//   then open http://127.0.0.1:9000/accept-invite#token=ok, or dry-run the real test:
//   LATCHKEY_API_URL=http://127.0.0.1:9000 LATCHKEY_MOTO_URL=http://127.0.0.1:9000 \
//   BOOTSTRAP_ADMIN_EMAIL=admin@example.test BOOTSTRAP_ADMIN_PASSWORD=dev-admin-password \
//     node --test tests/browser/accept-invite.test.mjs
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const TEMPLATE = fileURLToPath(new URL('../../../shared/templates/pages/accept-invite.html', import.meta.url));

export function render(nonce) {
  const html = readFileSync(TEMPLATE, 'utf8').replaceAll('{{ nonce }}', nonce);
  if (/\{\{|\{%|\{#/.test(html)) throw new Error('template uses more than {{ nonce }}');
  return html;
}

const problem = (status, code, title, detail) => ({
  status, body: { type: `https://latchkey.dev/problems/${code}`, title, status, detail, code },
});

function fakeAccept(token, password) {
  switch (token) {
    case 'ok': case 'slow': return { status: 200, body: { user_id: 'u-123', tenant: 'acme' } };
    case 'expired': return problem(410, 'token_expired', 'Token expired', 'The invitation expired.');
    case 'used': return problem(409, 'token_used', 'Token used', 'The invitation was already accepted.');
    case 'invalid': return problem(400, 'token_invalid', 'Token invalid', 'Unknown token.');
    case 'ratelimited': return problem(429, 'rate_limited', 'Too many requests', 'Retry later.');
    case 'boom': return problem(500, 'internal', 'Internal error', 'Request id 42 failed.');
    case 'weak':
      return password.includes(' ')
        ? { status: 200, body: { user_id: 'u-124', tenant: 'acme' } }
        : problem(422, 'weak_password', 'Weak password', 'This password appears in a list of leaked passwords. Choose another one.');
    default: return problem(400, 'token_invalid', 'Token invalid', 'Unknown token.');
  }
}

// In-memory stand-in for the stack: tenants, invited users, sent mail.
const tenants = new Set(['admin']);
const invites = new Map();   // token → {tenant, email, used, password}
const users = new Map();     // `${tenant}/${email}` → password
const mail = [];             // moto's ses.Message
users.set('admin/admin@example.test', 'dev-admin-password');
const escapeHtml = (s) => s.replace(/[&<>"'/]/g, (c) => `&#x${c.charCodeAt(0).toString(16)};`);

function fakeApi(method, path, body, auth) {
  const admin = auth === 'Bearer dev-admin-session';
  if (method === 'POST' && path === '/v1/sessions') {
    const ok = users.get(`${body.tenant}/${body.email}`) === body.password;
    if (!ok) return problem(401, 'invalid_credentials', 'Invalid credentials', 'Wrong email or password.');
    return { status: 200, body: { token: body.tenant === 'admin' ? 'dev-admin-session' : 'dev-user-session', expires_at: new Date(Date.now() + 3600e3).toISOString() } };
  }
  if (method === 'POST' && path === '/v1/tenants') {
    if (!admin) return problem(401, 'unauthorized', 'Authentication required', 'Sign in first.');
    if (!/^[a-z0-9-]{3,40}$/.test(body.subdomain || '')) return problem(400, 'invalid_tenant', 'Invalid tenant', 'Bad subdomain.');
    if (tenants.has(body.subdomain)) return problem(409, 'tenant_exists', 'Exists', 'Taken.');
    tenants.add(body.subdomain);
    return { status: 201, body: { id: body.subdomain, name: body.name, subdomain: body.subdomain } };
  }
  const m = path.match(/^\/v1\/tenants\/([a-z0-9-]+)\/invitations$/);
  if (method === 'POST' && m) {
    if (!admin) return problem(401, 'unauthorized', 'Authentication required', 'Sign in first.');
    const results = (body.invitations || []).map(({ email }) => {
      const token = `u${randomBytes(6).toString('hex')}.${randomBytes(32).toString('base64url')}`;
      invites.set(token, { tenant: m[1], email, used: false });
      const link = `http://public.example.invalid/accept-invite#token=${token}`;
      if (body.send_email) {
        mail.push({
          id: randomBytes(8).toString('hex'), source: 'no-reply@example.test', destinations: { ToAddresses: [email] },
          subject: `You're invited to ${m[1]}`,
          body: { html: `<p><a href="${escapeHtml(link)}">Accept invitation</a></p>`, text: `Open ${link}` },
        });
      }
      return { email, status: 'invited', user_id: token.split('.')[0], expires_at: new Date(Date.now() + 7 * 86400e3).toISOString(), email_sent: !!body.send_email };
    });
    return { status: 200, body: { results } };
  }
  if (method === 'POST' && path === '/v1/invitations/accept' && invites.has(body.token)) {
    const inv = invites.get(body.token);
    if (inv.used) return problem(410, 'token_used', 'The link has already been used', 'Already used.');
    if ([...String(body.password || '')].length < 12) return problem(400, 'weak_password', 'Weak', 'Use at least 12 characters.');
    inv.used = true;
    users.set(`${inv.tenant}/${inv.email}`, body.password);
    return { status: 200, body: { user_id: body.token.split('.')[0], tenant: inv.tenant } };
  }
  return null;
}

export function startFakeServer(port = 9000, host = '127.0.0.1') {
  const requests = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url, `http://${req.headers.host}`);
    requests.push(`${req.method} ${url.pathname}`);
    if (url.pathname === '/moto-api/data.json') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ ses: { Message: mail } }));
    }
    if (req.method === 'POST' && url.pathname.startsWith('/v1/')) {
      let raw = '';
      req.on('data', (c) => { raw += c; });
      req.on('end', () => {
        let body = {};
        try { body = JSON.parse(raw); } catch { /* empty */ }
        const out = fakeApi(req.method, url.pathname, body, req.headers.authorization);
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

// The page itself and the token-named fakes of POST /v1/invitations/accept.
function fallback(req, res, url, parsed) {
  if (url.pathname === '/accept-invite' && (req.method === 'GET' || req.method === 'HEAD')) {
    const nonce = randomBytes(16).toString('base64url');
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'content-security-policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'`,
    });
    return res.end(req.method === 'HEAD' ? undefined : render(nonce));
  }
  if (url.pathname === '/v1/invitations/accept' && req.method === 'POST') {
    const body = parsed || {};
    if (body.token === 'html') {
      res.writeHead(502, { 'content-type': 'text/html' });
      return res.end('<html><body>Bad gateway</body></html>');
    }
    const out = fakeAccept(body.token, String(body.password || ''));
    const send = () => {
      res.writeHead(out.status, { 'content-type': out.status === 200 ? 'application/json' : 'application/problem+json' });
      res.end(JSON.stringify(out.body));
    };
    return body.token === 'slow' ? setTimeout(send, 1500) : send();
  }
  res.writeHead(404, { 'content-type': 'application/problem+json' });
  res.end(JSON.stringify({ type: 'about:blank', title: 'Not found', status: 404, code: 'not_found' }));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { url } = await startFakeServer(Number(process.argv[2] || 9000));
  console.log(`DEV fake server on ${url}/accept-invite#token=ok (tokens: ok slow expired used invalid ratelimited boom weak html)`);
}
