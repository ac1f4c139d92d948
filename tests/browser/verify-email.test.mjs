// The verify-email page, in headless Chromium, against a live local stack.
//
//   LATCHKEY_API_URL=http://127.0.0.1:9100 LATCHKEY_MOTO_URL=http://127.0.0.1:5000 \
//   BOOTSTRAP_ADMIN_EMAIL=... BOOTSTRAP_ADMIN_PASSWORD=... \
//     node --test tests/browser/verify-email.test.mjs
//
// Two ways to the page: an active user whose address is not verified (they joined through a
// copied access link) gets a verification link from POST /v1/users/{id}/resend-verification;
// an admin's POST /v1/users/{id}/email-change mails a confirmation link to the NEW address.
// The page spends the token only when the button is pressed. The helpers are in helpers.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, statSync } from 'node:fs';
import {
  API, SHOTS, activeUser, adminApi, api, apiRequests, assertSelfContained, expectStatus, getUser,
  mailedLink, newEmail, openPage, requestLines, signIn, sleep, tokenOf, unverifiedUser, useStack,
} from './helpers.mjs';

const PAGE = '/verify-email';
const VERIFY = '/v1/email/verify';
const BUTTON = 'Confirm my email address';
const USED = 'This link has already been used; your address is already confirmed.';
const INCOMPLETE = 'This link is incomplete. Open the link from your email again, or ask your administrator to send a new one.';

useStack();

// An unverified active user and the verification link mailed to them.
async function verificationLink() {
  const user = await unverifiedUser();
  await expectStatus(202, adminApi('POST', `/v1/users/${user.userId}/resend-verification`), 'resend verification');
  const link = await mailedLink(user.email, 'verify-email');
  return { user, link, token: tokenOf(link) };
}

// A verified active user, an admin's change of their address, and the link mailed to the new one.
async function emailChangeLink() {
  const user = await activeUser();
  const next = newEmail();
  await expectStatus(202, adminApi('POST', `/v1/users/${user.userId}/email-change`, { new_email: next }), 'email change');
  const link = await mailedLink(next, 'verify-email');
  return { user, next, link, token: tokenOf(link) };
}

const confirm = (page) => page.getByRole('button', { name: BUTTON }).click();

// --- the tests -----------------------------------------------------------------------------

test('opening the link sends nothing until the button is pressed; then the address is verified', async (t) => {
  const { user, link } = await verificationLink();
  // A mail scanner's HEAD and GET of the link, then a person opening it: nothing is spent.
  assert.equal((await fetch(link, { method: 'HEAD' })).status, 200);
  assert.equal((await fetch(link)).status, 200);
  const { page, requests } = await openPage(t, link);
  await page.getByRole('button', { name: BUTTON }).waitFor({ state: 'visible' });
  await page.waitForLoadState('networkidle');
  await sleep(1000);
  assert.deepEqual(requestLines(requests), [`GET ${PAGE}`], 'the page made a request before the button was pressed');
  assert.equal((await getUser(user.userId)).email_verified, false, 'verified before the button was pressed');

  await confirm(page);
  const success = page.locator('#success');
  await success.waitFor({ state: 'visible', timeout: 30000 });
  const text = await success.innerText();
  assert.match(text, /Your email address is confirmed/);
  assert.ok(text.includes(`${user.email} is confirmed for ${user.tenant}.`), text);
  assert.equal(await page.locator('#verify-form').isHidden(), true);
  assert.deepEqual(requestLines(apiRequests(requests)), [`POST ${VERIFY}`]);

  const after = await getUser(user.userId);
  assert.equal(after.email_verified, true, JSON.stringify(after));
  assert.equal(after.email, user.email);
});

test('an email change: the link mailed to the new address moves sign-in to it', async (t) => {
  const { user, next, link } = await emailChangeLink();
  const { page } = await openPage(t, link);
  await confirm(page);
  const success = page.locator('#success');
  await success.waitFor({ state: 'visible', timeout: 30000 });
  const text = await success.innerText();
  assert.match(text, /Your sign-in address has changed/);
  assert.ok(text.includes(`From now on, sign in to ${user.tenant} with ${next}.`), text);
  assert.ok(!text.includes('is confirmed for'), text);

  const session = await expectStatus(200, signIn(user.tenant, next, user.password), 'sign-in with the new address');
  assert.equal(typeof session.token, 'string');
  await expectStatus(401, signIn(user.tenant, user.email, user.password), 'sign-in with the old address');
  const moved = await getUser(user.userId);   // the same user, moved
  assert.equal(moved.email, next, JSON.stringify(moved));
  assert.equal(moved.email_verified, true, JSON.stringify(moved));
});

test('a link that was already used shows the "already been used" message', async (t) => {
  const { link, token } = await verificationLink();
  await expectStatus(200, api('POST', VERIFY, { token }), 'first verification');
  const { page } = await openPage(t, link);
  await confirm(page);
  const message = page.locator('#message');
  await page.locator('#message:not(:empty)').waitFor({ timeout: 30000 });
  assert.equal(await message.getAttribute('role'), 'alert');
  assert.equal(await message.innerText(), USED);
  assert.equal(await page.getByRole('button', { name: BUTTON }).isHidden(), true);
});

test('a link without a token shows the incomplete-link message and no button', async (t) => {
  const { page, requests } = await openPage(t, API + PAGE);
  assert.equal(await page.locator('#message').innerText(), INCOMPLETE);
  assert.equal(await page.locator('#verify-form').isHidden(), true);
  assert.equal(await page.getByRole('button', { name: BUTTON }).count(), 0);
  assert.deepEqual(apiRequests(requests), []);
});

test('the page loads no external resource and drops the token from the address bar', async (t) => {
  const { link, token } = await verificationLink();
  const { page, requests, consoleErrors } = await openPage(t, link);
  await page.waitForLoadState('networkidle');
  const href = await page.evaluate(() => location.href);
  assert.equal(href, API + PAGE, 'the fragment is still in the address bar');
  assert.ok(!href.includes(token));

  await confirm(page);
  await page.locator('#success').waitFor({ state: 'visible', timeout: 30000 });
  await page.waitForLoadState('networkidle');

  assertSelfContained(requests, consoleErrors);
  assert.deepEqual(requestLines(requests), [`GET ${PAGE}`, `POST ${VERIFY}`]);
});

test('screenshots of the button and of both success panels', async (t) => {
  mkdirSync(SHOTS, { recursive: true });
  const verify = await verificationLink();
  const { page } = await openPage(t, verify.link);
  await page.getByRole('button', { name: BUTTON }).waitFor({ state: 'visible' });
  await page.screenshot({ path: `${SHOTS}verify-email-button.png`, fullPage: true });
  await confirm(page);
  await page.locator('#success').waitFor({ state: 'visible', timeout: 30000 });
  await page.screenshot({ path: `${SHOTS}verify-email-success.png`, fullPage: true });

  const change = await emailChangeLink();
  const changed = await openPage(t, change.link);
  await confirm(changed.page);
  await changed.page.locator('#success').waitFor({ state: 'visible', timeout: 30000 });
  await changed.page.screenshot({ path: `${SHOTS}verify-email-changed.png`, fullPage: true });
  for (const name of ['verify-email-button.png', 'verify-email-success.png', 'verify-email-changed.png']) {
    assert.ok(statSync(SHOTS + name).size > 1000, name);
  }
});
