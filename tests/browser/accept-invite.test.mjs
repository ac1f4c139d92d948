// The accept-invite page, in headless Chromium, against a live local stack.
//
//   LATCHKEY_API_URL=http://127.0.0.1:9100 LATCHKEY_MOTO_URL=http://127.0.0.1:5000 \
//   BOOTSTRAP_ADMIN_EMAIL=... BOOTSTRAP_ADMIN_PASSWORD=... \
//     node --test tests/browser/accept-invite.test.mjs
//
// Optional: CHROMIUM_PATH (default /usr/bin/chromium, Debian's package).
// Every test makes its own tenant (b-<random>) and invitee (<random>@example.test),
// reads the invitation mail from moto's /moto-api/data.json, and opens the mailed
// link with its origin replaced by LATCHKEY_API_URL's. The helpers are in helpers.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, statSync } from 'node:fs';
import {
  API, SHOTS, api, apiRequests, expectStatus, invitee, openPage, passphrase, sleep, useStack,
} from './helpers.mjs';

const PAGE = '/accept-invite';
const ACCEPT = '/v1/invitations/accept';
const USED = "This invitation has already been used. Sign in with the password you set, or use 'Forgot password'.";
const INCOMPLETE = 'This link is incomplete. Open the link from your invitation email again, or ask your administrator for a new invitation.';

useStack();

async function setPassword(page, password, confirm = password) {
  await page.getByLabel('New password').fill(password);
  await page.getByLabel('Confirm password').fill(confirm);
  await page.getByRole('button', { name: 'Activate account' }).click();
}

// --- the tests -----------------------------------------------------------------------------

test('the emailed link activates the account and the user can then sign in to the tenant', async (t) => {
  const inv = await invitee();
  const password = passphrase();
  const { page } = await openPage(t, inv.link);
  await setPassword(page, password);
  const success = page.locator('#success');
  await success.waitFor({ state: 'visible', timeout: 30000 });
  const text = await success.innerText();
  assert.match(text, /Your account is ready/);
  assert.ok(text.includes(`You can now sign in to ${inv.tenant} with your email address and the password you just set.`), text);
  assert.equal(await page.locator('#accept-form').isHidden(), true);

  const session = await expectStatus(200, api('POST', '/v1/sessions', { tenant: inv.tenant, email: inv.email, password }), 'sign-in after accepting');
  assert.equal(typeof session.token, 'string');
});

test('opening the page, a HEAD and a GET of the link spend nothing: the link can still be accepted', async (t) => {
  const inv = await invitee();
  const { page, context, requests } = await openPage(t, inv.link);
  await page.locator('#accept-form').waitFor({ state: 'visible' });
  await page.waitForLoadState('networkidle');
  assert.deepEqual(apiRequests(requests), [], 'the page called the API on load');
  await context.close();

  assert.equal((await fetch(inv.link, { method: 'HEAD' })).status, 200);
  assert.equal((await fetch(inv.link)).status, 200);

  const out = await expectStatus(200, api('POST', ACCEPT, { token: inv.token, password: passphrase() }), 'accept after opening');
  assert.equal(out.tenant, inv.tenant);
});

test('a too-short password shows the client-side message and sends no request', async (t) => {
  const inv = await invitee();
  const { page, requests } = await openPage(t, inv.link);
  await setPassword(page, 'short');
  const error = page.locator('#password-error');
  await error.waitFor({ state: 'visible' });
  assert.match(await error.innerText(), /at least 12 characters/);
  assert.equal(await page.getByLabel('New password').getAttribute('aria-invalid'), 'true');
  await sleep(500);
  assert.deepEqual(apiRequests(requests), []);
  assert.equal(await page.locator('#accept-form').isVisible(), true);
});

test('a second use of an already-accepted link shows the "already been used" message', async (t) => {
  const inv = await invitee();
  await expectStatus(200, api('POST', ACCEPT, { token: inv.token, password: passphrase() }), 'first accept');
  const { page } = await openPage(t, inv.link);
  await setPassword(page, passphrase());
  const message = page.locator('#message');
  await page.locator('#message:not(:empty)').waitFor({ timeout: 30000 });
  assert.equal(await message.getAttribute('role'), 'alert');
  assert.equal(await message.innerText(), USED);
  assert.equal(await page.locator('#accept-form').isHidden(), true);
});

test('a link without a token shows the incomplete-link message and no form', async (t) => {
  const { page, requests } = await openPage(t, API + PAGE);
  assert.equal(await page.locator('#message').innerText(), INCOMPLETE);
  assert.equal(await page.locator('#accept-form').isHidden(), true);
  assert.equal(await page.getByRole('button', { name: 'Activate account' }).count(), 0);
  assert.deepEqual(apiRequests(requests), []);
});

test('the page loads no external resource and drops the token from the address bar', async (t) => {
  const inv = await invitee();
  const { page, requests, consoleErrors } = await openPage(t, inv.link);
  await page.waitForLoadState('networkidle');
  const href = await page.evaluate(() => location.href);
  assert.equal(href, API + PAGE, 'the fragment is still in the address bar');
  assert.ok(!href.includes(inv.token));

  await setPassword(page, passphrase());
  await page.locator('#success').waitFor({ state: 'visible', timeout: 30000 });
  await page.waitForLoadState('networkidle');

  for (const r of requests) assert.equal(new URL(r.url).origin, API, `request to another origin: ${r.method} ${r.url}`);
  assert.deepEqual(requests.map((r) => `${r.method} ${new URL(r.url).pathname}`), [`GET ${PAGE}`, `POST ${ACCEPT}`]);
  assert.deepEqual(consoleErrors.filter((e) => /Content Security Policy|Refused to/i.test(e)), [], 'CSP violations');
});

test('screenshots of the form and of the success panel', async (t) => {
  mkdirSync(SHOTS, { recursive: true });
  const inv = await invitee();
  const { page } = await openPage(t, inv.link);
  await page.locator('#accept-form').waitFor({ state: 'visible' });
  await page.screenshot({ path: `${SHOTS}accept-invite-form.png`, fullPage: true });
  await setPassword(page, passphrase());
  await page.locator('#success').waitFor({ state: 'visible', timeout: 30000 });
  await page.screenshot({ path: `${SHOTS}accept-invite-success.png`, fullPage: true });
  for (const name of ['accept-invite-form.png', 'accept-invite-success.png']) assert.ok(statSync(SHOTS + name).size > 1000, name);
});
