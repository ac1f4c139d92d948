// DEV ONLY — NOT USED BY THE REAL TESTS.
// Drives the accept-invite page served by dev/fake-server.mjs (a fake API) through
// every message it can show, fails on any CSP violation or script error, and saves
// screenshots to tests/browser/screenshots/dev-*.png.
//
//   node tests/browser/dev/check-page.mjs
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { startFakeServer } from './fake-server.mjs';

const SHOTS = new URL('../screenshots/', import.meta.url).pathname;
mkdirSync(SHOTS, { recursive: true });

const { server, requests, url } = await startFakeServer(0);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

const PW = 'correct horse battery staple';
let failures = 0;

async function scenario(name, fn, opts = {}) {
  const context = await browser.newContext(opts);
  const page = await context.newPage();
  const problems = [];
  const seen = [];
  page.on('console', (m) => {
    // A 4xx/5xx answer is logged by Chromium itself; anything else (CSP violations) is a problem.
    if ((m.type() === 'error' || m.type() === 'warning') && !m.text().startsWith('Failed to load resource')) problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(String(e)));
  page.on('request', (r) => seen.push(`${r.method()} ${r.url()}`));
  try {
    await fn(page, seen);
    assert.deepEqual(problems, [], 'console errors / CSP violations');
    console.log(`ok   ${name}`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}\n     ${e.message.split('\n').join('\n     ')}`);
  } finally {
    await context.close();
  }
}

const open = (page, token) => page.goto(`${url}/accept-invite${token === undefined ? '' : `#token=${token}`}`);
async function fill(page, a, b = a) {
  await page.fill('#password', a);
  await page.fill('#password-confirm', b);
  await page.click('#submit');
}
const text = (page, sel) => page.locator(sel).innerText();

await scenario('form, fragment dropped, no request on load', async (page, seen) => {
  await open(page, 'ok');
  await page.locator('#accept-form').waitFor();
  assert.equal(page.url(), `${url}/accept-invite`);
  // about:blank, then this page: the fragment was replaced, not pushed as a third entry.
  assert.equal(await page.evaluate(() => history.length), 2);
  assert.deepEqual(seen, [`GET ${url}/accept-invite`]);
  await page.screenshot({ path: `${SHOTS}dev-form.png`, fullPage: true });
});
await scenario('success panel', async (page, seen) => {
  await open(page, 'ok');
  await fill(page, PW);
  await page.locator('#success').waitFor();
  assert.match(await text(page, '#success'), /Your account is ready[\s\S]*sign in to acme with your email address/);
  assert.equal(await page.locator('#accept-form').isHidden(), true);
  assert.deepEqual(seen, [`GET ${url}/accept-invite`, `POST ${url}/v1/invitations/accept`]);
  await page.screenshot({ path: `${SHOTS}dev-success.png`, fullPage: true });
});
await scenario('button disabled while in flight', async (page) => {
  await open(page, 'slow');
  await fill(page, PW);
  assert.equal(await page.locator('#submit').isDisabled(), true);
  assert.equal(await text(page, '#submit'), 'Activating…');
  await page.locator('#success').waitFor();
});
await scenario('too short: client message, no request', async (page, seen) => {
  await open(page, 'ok');
  await fill(page, 'short');
  assert.match(await text(page, '#password-error'), /at least 12 characters/);
  assert.equal(await page.getAttribute('#password', 'aria-invalid'), 'true');
  assert.deepEqual(seen, [`GET ${url}/accept-invite`]);
  await page.screenshot({ path: `${SHOTS}dev-too-short.png`, fullPage: true });
});
await scenario('mismatch: client message, no request', async (page, seen) => {
  await open(page, 'ok');
  await fill(page, PW, PW + 'x');
  assert.match(await text(page, '#password-confirm-error'), /not the same/);
  assert.deepEqual(seen, [`GET ${url}/accept-invite`]);
});
await scenario('show password toggles both fields', async (page) => {
  await open(page, 'ok');
  await page.check('#show-password');
  assert.equal(await page.getAttribute('#password', 'type'), 'text');
  assert.equal(await page.getAttribute('#password-confirm', 'type'), 'text');
  await page.uncheck('#show-password');
  assert.equal(await page.getAttribute('#password', 'type'), 'password');
});
await scenario('weak password: server detail by the field, form kept, then success', async (page) => {
  await open(page, 'weak');
  await fill(page, 'passwordpassword');
  await page.locator('#password-error:not(:empty)').waitFor();
  assert.match(await text(page, '#password-error'), /leaked passwords/);
  assert.equal(await page.locator('#accept-form').isVisible(), true);
  assert.equal(await page.locator('#submit').isEnabled(), true);
  await page.screenshot({ path: `${SHOTS}dev-weak.png`, fullPage: true });
  await fill(page, PW);
  await page.locator('#success').waitFor();
});
const messages = {
  expired: 'This invitation has expired. Ask your administrator to send you a new one.',
  used: "This invitation has already been used. Sign in with the password you set, or use 'Forgot password'.",
  invalid: 'This link is not valid any more — a newer invitation may have been sent. Use the most recent email, or ask your administrator for a new one.',
  ratelimited: 'Too many attempts. Wait a minute and try again.',
};
for (const [token, want] of Object.entries(messages)) {
  await scenario(`${token}: message`, async (page) => {
    await open(page, token);
    await fill(page, PW);
    await page.locator('#message:not(:empty)').waitFor();
    assert.equal(await text(page, '#message'), want);
    assert.equal(await page.getAttribute('#message', 'role'), 'alert');
    assert.equal(await page.locator('#accept-form').isVisible(), token === 'ratelimited');
    await page.screenshot({ path: `${SHOTS}dev-${token}.png`, fullPage: true });
  });
}
await scenario('server error: generic message plus detail', async (page) => {
  await open(page, 'boom');
  await fill(page, PW);
  await page.locator('#message:not(:empty)').waitFor();
  assert.equal(await text(page, '#message'), 'Something went wrong on our side. Try again in a moment.\nRequest id 42 failed.');
});
await scenario('non-JSON error: generic message', async (page) => {
  await open(page, 'html');
  await fill(page, PW);
  await page.locator('#message:not(:empty)').waitFor();
  assert.equal(await text(page, '#message'), 'Something went wrong on our side. Try again in a moment.');
});
await scenario('network failure: generic message, button back', async (page) => {
  await open(page, 'ok');
  await page.route('**/v1/invitations/accept', (r) => r.abort());
  await fill(page, PW);
  await page.locator('#message:not(:empty)').waitFor();
  assert.equal(await text(page, '#message'), 'Something went wrong on our side. Try again in a moment.');
  assert.equal(await page.locator('#submit').isEnabled(), true);
});
await scenario('no token: incomplete-link message, no form', async (page, seen) => {
  await open(page);
  assert.equal(await text(page, '#message'), 'This link is incomplete. Open the link from your invitation email again, or ask your administrator for a new invitation.');
  assert.equal(await page.locator('#accept-form').isHidden(), true);
  assert.deepEqual(seen, [`GET ${url}/accept-invite`]);
  await page.screenshot({ path: `${SHOTS}dev-incomplete.png`, fullPage: true });
});
await scenario('empty token: incomplete-link message', async (page) => {
  await open(page, '');
  assert.match(await text(page, '#message'), /This link is incomplete/);
});
await scenario('phone, dark mode', async (page) => {
  await open(page, 'ok');
  await page.screenshot({ path: `${SHOTS}dev-phone-dark-form.png`, fullPage: true });
  await fill(page, 'short', 'other');
  await page.screenshot({ path: `${SHOTS}dev-phone-dark-errors.png`, fullPage: true });
}, { viewport: { width: 375, height: 740 }, deviceScaleFactor: 2, colorScheme: 'dark', isMobile: true, hasTouch: true });

await browser.close();
server.close();
console.log(`server saw: ${[...new Set(requests)].join(', ')}`);
console.log(`${failures === 0 ? 'all dev checks passed' : `${failures} dev check(s) failed`}`);
process.exit(failures ? 1 : 0);
