// The reset-password page, in headless Chromium, against a live local stack.
//
//   LATCHKEY_API_URL=http://127.0.0.1:9100 LATCHKEY_MOTO_URL=http://127.0.0.1:5000 \
//   BOOTSTRAP_ADMIN_EMAIL=... BOOTSTRAP_ADMIN_PASSWORD=... \
//     node --test tests/browser/reset-password.test.mjs
//
// Every test makes its own tenant and an active user (invited, then accepted through the mailed
// link), gets a reset link mailed to them (by an admin, or through "forgot password"), and opens
// it with its origin replaced by LATCHKEY_API_URL's. The helpers are in helpers.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, statSync } from 'node:fs';
import {
  API, SHOTS, activeUser, adminApi, api, apiRequests, assertSelfContained, expectStatus, mailedLink,
  openPage, passphrase, requestLines, signIn, sleep, tokenOf, useStack,
} from './helpers.mjs';

const PAGE = '/reset-password';
const RESET = '/v1/password/reset';
const USED = 'This reset link has already been used. Sign in with your new password, or request a new link.';
const INCOMPLETE = "This link is incomplete. Open the link from your email again, or use 'Forgot password' to get a new one.";

useStack();

// The reset link mailed to `user`, sent by an admin (`admin`) or asked for by the user (`forgot`).
async function resetLink(user, how = 'admin') {
  if (how === 'admin') {
    await expectStatus(202, adminApi('POST', `/v1/users/${user.userId}/password-reset`), 'admin password reset');
  } else {
    await expectStatus(202, api('POST', '/v1/password/forgot', { tenant: user.tenant, email: user.email }), 'forgot password');
  }
  const link = await mailedLink(user.email, 'reset-password');
  return { link, token: tokenOf(link) };
}

async function setNewPassword(page, password, confirm = password) {
  await page.getByLabel('New password').fill(password);
  await page.getByLabel('Confirm password').fill(confirm);
  await page.getByRole('button', { name: 'Set new password' }).click();
}

async function expectSuccess(page, user) {
  const success = page.locator('#success');
  await success.waitFor({ state: 'visible', timeout: 30000 });
  const text = await success.innerText();
  assert.match(text, /Your password has been changed/);
  assert.ok(text.includes(`Sign in to ${user.tenant} with your new password. Everywhere you were signed in before, you have been signed out.`), text);
  assert.equal(await page.locator('#reset-form').isHidden(), true);
}

// --- the tests -----------------------------------------------------------------------------

test('the reset link an admin sends sets a new password: it signs in, the old one gets 401', async (t) => {
  const user = await activeUser();
  const { link } = await resetLink(user, 'admin');
  const password = passphrase();
  const { page } = await openPage(t, link);
  await setNewPassword(page, password);
  await expectSuccess(page, user);

  const session = await expectStatus(200, signIn(user.tenant, user.email, password), 'sign-in with the new password');
  assert.equal(typeof session.token, 'string');
  await expectStatus(401, signIn(user.tenant, user.email, user.password), 'sign-in with the old password');
});

test('the reset link from "forgot password" sets a new password the same way', async (t) => {
  const user = await activeUser();
  const { link } = await resetLink(user, 'forgot');
  const password = passphrase();
  const { page } = await openPage(t, link);
  await setNewPassword(page, password);
  await expectSuccess(page, user);

  await expectStatus(200, signIn(user.tenant, user.email, password), 'sign-in with the new password');
  await expectStatus(401, signIn(user.tenant, user.email, user.password), 'sign-in with the old password');
});

test('the success panel is true: a session from before the reset stops working', async (t) => {
  const user = await activeUser('admin');   // an admin of the tenant may read their own user
  const before = await expectStatus(200, signIn(user.tenant, user.email, user.password), 'sign-in before the reset');
  await expectStatus(200, api('GET', `/v1/users/${user.userId}`, undefined, before.token), 'the old session, before the reset');
  const { link } = await resetLink(user, 'admin');
  const { page } = await openPage(t, link);
  await setNewPassword(page, passphrase());
  await expectSuccess(page, user);
  await expectStatus(401, api('GET', `/v1/users/${user.userId}`, undefined, before.token), 'the old session, after the reset');
});

test('opening the page, a HEAD and a GET of the link spend nothing: the link still resets afterwards', async (t) => {
  const user = await activeUser();
  const { link, token } = await resetLink(user);
  const { page, context, requests } = await openPage(t, link);
  await page.locator('#reset-form').waitFor({ state: 'visible' });
  await page.waitForLoadState('networkidle');
  await sleep(500);
  assert.deepEqual(apiRequests(requests), [], 'the page called the API on load');
  await context.close();

  assert.equal((await fetch(link, { method: 'HEAD' })).status, 200);
  assert.equal((await fetch(link)).status, 200);

  const password = passphrase();
  const out = await expectStatus(200, api('POST', RESET, { token, password }), 'reset after opening');
  assert.equal(out.tenant, user.tenant);
  assert.equal(out.user_id, user.userId);
  await expectStatus(200, signIn(user.tenant, user.email, password), 'sign-in with the password set through the API');
});

test('a reset link that was already used shows the "already been used" message', async (t) => {
  const user = await activeUser();
  const { link, token } = await resetLink(user);
  await expectStatus(200, api('POST', RESET, { token, password: passphrase() }), 'first reset');
  const { page } = await openPage(t, link);
  await setNewPassword(page, passphrase());
  const message = page.locator('#message');
  await page.locator('#message:not(:empty)').waitFor({ timeout: 30000 });
  assert.equal(await message.getAttribute('role'), 'alert');
  assert.equal(await message.innerText(), USED);
  assert.equal(await page.locator('#reset-form').isHidden(), true);
});

test('a link without a token shows the incomplete-link message and no form', async (t) => {
  const { page, requests } = await openPage(t, API + PAGE);
  assert.equal(await page.locator('#message').innerText(), INCOMPLETE);
  assert.equal(await page.locator('#reset-form').isHidden(), true);
  assert.equal(await page.getByRole('button', { name: 'Set new password' }).count(), 0);
  assert.deepEqual(apiRequests(requests), []);
});

test('the page loads no external resource and drops the token from the address bar', async (t) => {
  const user = await activeUser();
  const { link, token } = await resetLink(user);
  const { page, requests, consoleErrors } = await openPage(t, link);
  await page.waitForLoadState('networkidle');
  const href = await page.evaluate(() => location.href);
  assert.equal(href, API + PAGE, 'the fragment is still in the address bar');
  assert.ok(!href.includes(token));

  await setNewPassword(page, passphrase());
  await page.locator('#success').waitFor({ state: 'visible', timeout: 30000 });
  await page.waitForLoadState('networkidle');

  assertSelfContained(requests, consoleErrors);
  assert.deepEqual(requestLines(requests), [`GET ${PAGE}`, `POST ${RESET}`]);
});

test('screenshots of the reset form and of the success panel', async (t) => {
  mkdirSync(SHOTS, { recursive: true });
  const user = await activeUser();
  const { link } = await resetLink(user);
  const { page } = await openPage(t, link);
  await page.locator('#reset-form').waitFor({ state: 'visible' });
  await page.screenshot({ path: `${SHOTS}reset-password-form.png`, fullPage: true });
  await setNewPassword(page, passphrase());
  await page.locator('#success').waitFor({ state: 'visible', timeout: 30000 });
  await page.screenshot({ path: `${SHOTS}reset-password-success.png`, fullPage: true });
  for (const name of ['reset-password-form.png', 'reset-password-success.png']) assert.ok(statSync(SHOTS + name).size > 1000, name);
});
