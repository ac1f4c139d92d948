// DEV ONLY — NOT USED BY THE REAL TESTS.
// Drives the pages opened from mail (accept-invite, reset-password, verify-email), served
// by dev/fake-server.mjs (a fake API), through every message they can show, fails on any
// CSP violation or script error, and saves screenshots to tests/browser/screenshots/dev-*.png.
// First, static checks of the three templates: self-contained, and the <style> and the
// shared part of the <script> identical in all three (only PAGE and the HTML differ).
//
//   node tests/browser/dev/check-page.mjs
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { PAGES, assemble, startFakeServer } from './fake-server.mjs';

const SHOTS = new URL('../screenshots/', import.meta.url).pathname;
mkdirSync(SHOTS, { recursive: true });

// --- static checks of the templates ------------------------------------------------------
const SHARED_MARK = '// ---- From here to the end of the script: the same in every page opened from mail. ----';
const sources = Object.fromEntries(PAGES.map((p) => [p, assemble(p)]));
const between = (html, from, to) => html.slice(html.indexOf(from), html.indexOf(to, html.indexOf(from)) + to.length);
let staticFailures = 0;
for (const [name, html] of Object.entries(sources)) {
  const problems = [];
  if ((html.match(/<style\b/g) || []).length !== 1 || !html.includes('<style nonce="{{ nonce }}">')) problems.push('not exactly one <style nonce>');
  if ((html.match(/<script\b/g) || []).length !== 1 || !html.includes('<script nonce="{{ nonce }}">')) problems.push('not exactly one <script nonce>');
  if (/\sstyle\s*=/i.test(html)) problems.push('style attribute');
  if (/\son[a-z]+\s*=/i.test(html)) problems.push('inline event handler');
  if (/<(link|img|iframe|object|embed)\b|\ssrc\s*=|url\(|@import/i.test(html)) problems.push('external or loadable resource');
  if (/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/.test(html)) problems.push('HTML sink or eval');
  if (html.replaceAll('{{ nonce }}', '').match(/\{\{|\{%|\{#/)) problems.push('template syntax other than {{ nonce }}');
  if (!html.includes(SHARED_MARK)) problems.push('no shared-part marker');
  for (const other of PAGES) {
    if (between(html, '<style', '</style>') !== between(sources[other], '<style', '</style>')) problems.push(`<style> differs from ${other}.html`);
    if (between(html, SHARED_MARK, '</script>') !== between(sources[other], SHARED_MARK, '</script>')) problems.push(`shared script differs from ${other}.html`);
  }
  if (problems.length) { staticFailures++; console.log(`FAIL ${name}.html: ${[...new Set(problems)].join('; ')}`); }
  else console.log(`ok   ${name}.html: self-contained, shared style and script in step`);
}

const { server, requests, url } = await startFakeServer(0);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

const PW = 'correct horse battery staple';
let failures = staticFailures;

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

// --- /reset-password ------------------------------------------------------------------------
const RESET_MESSAGES = {
  expired: "This reset link has expired. Use 'Forgot password' to get a new one, or ask your administrator.",
  used: 'This reset link has already been used. Sign in with your new password, or request a new link.',
  invalid: 'This link is not valid any more — a newer one may have been sent. Use the most recent email.',
  ratelimited: 'Too many attempts. Wait a minute and try again.',
};
const GENERIC = 'Something went wrong on our side. Try again in a moment.';
// Through about:blank, so that each open is a fresh load (not a same-document fragment change).
const openReset = async (page, token) => {
  await page.goto('about:blank');
  return page.goto(`${url}/reset-password${token === undefined ? '' : `#token=${token}`}`);
};

await scenario('reset: form, fragment dropped, no request on load', async (page, seen) => {
  await openReset(page, 'ok');
  await page.locator('#reset-form').waitFor();
  assert.equal(page.url(), `${url}/reset-password`);
  assert.equal(await page.evaluate(() => history.length), 2);   // about:blank, then this page: replaced, not pushed
  assert.equal(await text(page, 'h1'), 'Reset your password');
  assert.equal(await text(page, '#submit'), 'Set new password');
  await page.waitForTimeout(300);
  assert.deepEqual(seen, [`GET ${url}/reset-password`]);
  await page.screenshot({ path: `${SHOTS}dev-reset-form.png`, fullPage: true });
});
await scenario('reset: success panel', async (page, seen) => {
  await openReset(page, 'ok');
  await fill(page, PW);
  await page.locator('#success').waitFor();
  assert.equal(await text(page, '#success'), 'Your password has been changed\n\nSign in to acme with your new password. Everywhere you were signed in before, you have been signed out.');
  assert.equal(await page.locator('#reset-form').isHidden(), true);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'success-title');
  assert.deepEqual(seen, [`GET ${url}/reset-password`, `POST ${url}/v1/password/reset`]);
  await page.screenshot({ path: `${SHOTS}dev-reset-success.png`, fullPage: true });
});
await scenario('reset: sends {token, password} only', async (page) => {
  await openReset(page, 'ok');
  const posted = page.waitForRequest('**/v1/password/reset');
  await fill(page, PW);
  const req = await posted;
  assert.deepEqual(req.postDataJSON(), { token: 'ok', password: PW });
  assert.equal(req.headers()['content-type'], 'application/json');
});
await scenario('reset: button disabled while in flight', async (page) => {
  await openReset(page, 'slow');
  await fill(page, PW);
  assert.equal(await page.locator('#submit').isDisabled(), true);
  assert.equal(await text(page, '#submit'), 'Saving…');
  await page.locator('#success').waitFor();
});
await scenario('reset: too short and mismatch: client messages, no request', async (page, seen) => {
  await openReset(page, 'ok');
  await fill(page, 'short', 'other');
  assert.match(await text(page, '#password-error'), /at least 12 characters/);
  assert.match(await text(page, '#password-confirm-error'), /not the same/);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'password');
  assert.deepEqual(seen, [`GET ${url}/reset-password`]);
  await page.screenshot({ path: `${SHOTS}dev-reset-errors.png`, fullPage: true });
});
await scenario('reset: show password toggles both fields', async (page) => {
  await openReset(page, 'ok');
  await page.check('#show-password');
  assert.equal(await page.getAttribute('#password', 'type'), 'text');
  assert.equal(await page.getAttribute('#password-confirm', 'type'), 'text');
});
await scenario('reset: weak password: server detail by the field, form kept, then success', async (page) => {
  await openReset(page, 'weak');
  await fill(page, 'passwordpassword');
  await page.locator('#password-error:not(:empty)').waitFor();
  assert.match(await text(page, '#password-error'), /leaked passwords/);
  assert.equal(await page.locator('#reset-form').isVisible(), true);
  assert.equal(await text(page, '#message'), '');
  await fill(page, PW);
  await page.locator('#success').waitFor();
});
for (const [token, want] of Object.entries(RESET_MESSAGES)) {
  await scenario(`reset: ${token}: message`, async (page) => {
    await openReset(page, token);
    await fill(page, PW);
    await page.locator('#message:not(:empty)').waitFor();
    assert.equal(await text(page, '#message'), want);
    assert.equal(await page.locator('#reset-form').isVisible(), token === 'ratelimited');
    await page.screenshot({ path: `${SHOTS}dev-reset-${token}.png`, fullPage: true });
  });
}
await scenario('reset: 429 without a code: rate-limit message', async (page) => {
  await openReset(page, 'ok');
  await page.route('**/v1/password/reset', (r) => r.fulfill({ status: 429, contentType: 'text/plain', body: 'slow down' }));
  await fill(page, PW);
  await page.locator('#message:not(:empty)').waitFor();
  assert.equal(await text(page, '#message'), RESET_MESSAGES.ratelimited);
});
await scenario('reset: server error, non-JSON, network failure: generic message', async (page) => {
  await openReset(page, 'boom');
  await fill(page, PW);
  await page.locator('#message:not(:empty)').waitFor();
  assert.equal(await text(page, '#message'), `${GENERIC}\nRequest id 42 failed.`);
  await openReset(page, 'html');
  await fill(page, PW);
  await page.locator('#message:not(:empty)').waitFor();
  assert.equal(await text(page, '#message'), GENERIC);
  await openReset(page, 'ok');
  await page.route('**/v1/password/reset', (r) => r.abort());
  await fill(page, PW);
  await page.locator('#message:not(:empty)').waitFor();
  assert.equal(await text(page, '#message'), GENERIC);
  assert.equal(await page.locator('#submit').isEnabled(), true);
});
await scenario('reset: no token or a malformed one: incomplete-link message, no form', async (page, seen) => {
  for (const token of [undefined, '', 'not a token!']) {
    await openReset(page, token);
    assert.equal(await text(page, '#message'), "This link is incomplete. Open the link from your email again, or use 'Forgot password' to get a new one.");
    assert.equal(await page.locator('#reset-form').isHidden(), true);
  }
  assert.ok(seen.every((r) => r.startsWith(`GET ${url}/reset-password`)), seen.join(', '));
  await page.screenshot({ path: `${SHOTS}dev-reset-incomplete.png`, fullPage: true });
});
await scenario('reset: phone, dark mode', async (page) => {
  await openReset(page, 'ok');
  await page.screenshot({ path: `${SHOTS}dev-reset-phone-dark-form.png`, fullPage: true });
  await fill(page, PW);
  await page.locator('#success').waitFor();
  await page.screenshot({ path: `${SHOTS}dev-reset-phone-dark-success.png`, fullPage: true });
}, { viewport: { width: 375, height: 740 }, deviceScaleFactor: 2, colorScheme: 'dark', isMobile: true, hasTouch: true });

// --- /verify-email --------------------------------------------------------------------------
const VERIFY_MESSAGES = {
  expired: 'This confirmation link has expired. Ask your administrator to send a new one.',
  used: 'This link has already been used; your address is already confirmed.',
  invalid: 'This link is not valid any more — a newer one may have been sent. Use the most recent email.',
  taken: 'That address now belongs to another account, so it cannot be moved. Ask your administrator.',
  ratelimited: 'Too many attempts. Wait a minute and try again.',
};
const openVerify = async (page, token) => {
  await page.goto('about:blank');
  return page.goto(`${url}/verify-email${token === undefined ? '' : `#token=${token}`}`);
};
const press = (page) => page.click('#confirm');

await scenario('verify: one button, fragment dropped, nothing sent before the press', async (page, seen) => {
  await openVerify(page, 'ok');
  await page.locator('#confirm').waitFor();
  assert.equal(page.url(), `${url}/verify-email`);
  assert.equal(await page.evaluate(() => history.length), 2);   // about:blank, then this page: replaced, not pushed
  assert.equal(await text(page, 'h1'), 'Confirm your email address');
  assert.equal(await text(page, '#confirm'), 'Confirm my email address');
  assert.equal(await page.locator('input').count(), 0);
  await page.waitForTimeout(1000);
  assert.deepEqual(seen, [`GET ${url}/verify-email`]);
  await page.screenshot({ path: `${SHOTS}dev-verify-button.png`, fullPage: true });
});
await scenario('verify: press → "verified" panel; sends {token} only', async (page, seen) => {
  await openVerify(page, 'ok');
  const posted = page.waitForRequest('**/v1/email/verify');
  await press(page);
  assert.deepEqual((await posted).postDataJSON(), { token: 'ok' });
  await page.locator('#success').waitFor();
  assert.equal(await text(page, '#success'), 'Your email address is confirmed\n\nada@acme.test is confirmed for acme.');
  assert.equal(await page.locator('#verify-form').isHidden(), true);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'success-title');
  assert.deepEqual(seen, [`GET ${url}/verify-email`, `POST ${url}/v1/email/verify`]);
  await page.screenshot({ path: `${SHOTS}dev-verify-success.png`, fullPage: true });
});
await scenario('verify: press → "email_changed" panel', async (page) => {
  await openVerify(page, 'changed');
  await press(page);
  await page.locator('#success').waitFor();
  assert.equal(await text(page, '#success'), 'Your sign-in address has changed\n\nFrom now on, sign in to acme with ada.new@acme.test.');
  await page.screenshot({ path: `${SHOTS}dev-verify-changed.png`, fullPage: true });
});
await scenario('verify: answer values are text, not HTML; missing ones have words', async (page) => {
  await openVerify(page, 'ok');
  await page.route('**/v1/email/verify', (r) => r.fulfill({ status: 200, contentType: 'application/json',
    body: JSON.stringify({ user_id: 'u', tenant: { name: '<b>Acme</b>' }, email: '<img src=x onerror=alert(1)>@x.test', kind: 'verified' }) }));
  await press(page);
  await page.locator('#success').waitFor();
  assert.equal(await text(page, '#success-verified'), '<img src=x onerror=alert(1)>@x.test is confirmed for <b>Acme</b>.');
  assert.equal(await page.locator('#success img, #success b').count(), 0);
  await openVerify(page, 'ok');
  await page.route('**/v1/email/verify', (r) => r.fulfill({ status: 200, contentType: 'application/json', body: '{"kind":"email_changed"}' }));
  await press(page);
  await page.locator('#success').waitFor();
  assert.equal(await text(page, '#success-changed'), 'From now on, sign in to your organisation with your new email address.');
});
await scenario('verify: button disabled while in flight, one request', async (page, seen) => {
  await openVerify(page, 'slow');
  await press(page);
  assert.equal(await page.locator('#confirm').isDisabled(), true);
  assert.equal(await text(page, '#confirm'), 'Confirming…');
  await page.locator('#confirm').dispatchEvent('click');
  await page.locator('#success').waitFor();
  assert.equal(seen.filter((r) => r.startsWith('POST')).length, 1);
});
for (const [token, want] of Object.entries(VERIFY_MESSAGES)) {
  await scenario(`verify: ${token}: message`, async (page) => {
    await openVerify(page, token);
    await press(page);
    await page.locator('#message:not(:empty)').waitFor();
    assert.equal(await text(page, '#message'), want);
    assert.equal(await page.getAttribute('#message', 'role'), 'alert');
    assert.equal(await page.locator('#confirm').isVisible(), token === 'ratelimited');
    await page.screenshot({ path: `${SHOTS}dev-verify-${token}.png`, fullPage: true });
  });
}
await scenario('verify: server error, non-JSON, network failure: generic message', async (page) => {
  await openVerify(page, 'boom');
  await press(page);
  await page.locator('#message:not(:empty)').waitFor();
  assert.equal(await text(page, '#message'), `${GENERIC}\nRequest id 42 failed.`);
  assert.equal(await page.locator('#confirm').isVisible(), true);
  await openVerify(page, 'html');
  await press(page);
  await page.locator('#message:not(:empty)').waitFor();
  assert.equal(await text(page, '#message'), GENERIC);
  await openVerify(page, 'ok');
  await page.route('**/v1/email/verify', (r) => r.abort());
  await press(page);
  await page.locator('#message:not(:empty)').waitFor();
  assert.equal(await text(page, '#message'), GENERIC);
  assert.equal(await page.locator('#confirm').isEnabled(), true);
});
await scenario('verify: no token: incomplete-link message, no button', async (page, seen) => {
  await openVerify(page);
  assert.equal(await text(page, '#message'), 'This link is incomplete. Open the link from your email again, or ask your administrator to send a new one.');
  assert.equal(await page.locator('#confirm').isVisible(), false);
  assert.deepEqual(seen, [`GET ${url}/verify-email`]);
  await page.screenshot({ path: `${SHOTS}dev-verify-incomplete.png`, fullPage: true });
});
await scenario('a second link opened in the same tab is taken too (fragment-only navigation)', async (page, seen) => {
  await openVerify(page, 'used');
  await page.locator('#confirm').waitFor();
  await page.goto(`${url}/verify-email#token=changed`);   // same document: only the fragment changes
  await page.waitForURL(`${url}/verify-email`);
  await page.locator('#confirm').waitFor();
  assert.equal(await page.locator('#message').innerText(), '');
  await press(page);
  await page.locator('#success').waitFor();
  assert.match(await text(page, '#success'), /Your sign-in address has changed/);
  assert.equal(seen.filter((r) => r.startsWith('POST')).length, 1);
});
await scenario('verify: phone, dark mode', async (page) => {
  await openVerify(page, 'changed');
  await page.screenshot({ path: `${SHOTS}dev-verify-phone-dark-button.png`, fullPage: true });
  await press(page);
  await page.locator('#success').waitFor();
  await page.screenshot({ path: `${SHOTS}dev-verify-phone-dark-changed.png`, fullPage: true });
}, { viewport: { width: 375, height: 740 }, deviceScaleFactor: 2, colorScheme: 'dark', isMobile: true, hasTouch: true });

await browser.close();
server.close();
console.log(`server saw: ${[...new Set(requests)].join(', ')}`);
console.log(`${failures === 0 ? 'all dev checks passed' : `${failures} dev check(s) failed`}`);
process.exit(failures ? 1 : 0);
