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
//
//   node tests/browser/dev/fake-server.mjs [port]   (default 9000)
//   then open http://127.0.0.1:9000/accept-invite#token=ok
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

export function startFakeServer(port = 9000, host = '127.0.0.1') {
  const requests = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url, `http://${req.headers.host}`);
    requests.push(`${req.method} ${url.pathname}`);
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
      let raw = '';
      req.on('data', (c) => { raw += c; });
      req.on('end', () => {
        let body = {};
        try { body = JSON.parse(raw); } catch { /* empty */ }
        if (body.token === 'html') {
          res.writeHead(502, { 'content-type': 'text/html' });
          return res.end('<html><body>Bad gateway</body></html>');
        }
        const out = fakeAccept(body.token, String(body.password || ''));
        const send = () => {
          res.writeHead(out.status, { 'content-type': out.status === 200 ? 'application/json' : 'application/problem+json' });
          res.end(JSON.stringify(out.body));
        };
        body.token === 'slow' ? setTimeout(send, 1500) : send();
      });
      return;
    }
    res.writeHead(404, { 'content-type': 'application/problem+json' });
    res.end(JSON.stringify({ type: 'about:blank', title: 'Not found', status: 404, code: 'not_found' }));
  });
  return new Promise((resolve) => server.listen(port, host, () => resolve({ server, requests, url: `http://${host}:${server.address().port}` })));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { url } = await startFakeServer(Number(process.argv[2] || 9000));
  console.log(`DEV fake server on ${url}/accept-invite#token=ok (tokens: ok slow expired used invalid ratelimited boom weak html)`);
}
