// A person's own page in headless Chromium on a 320 px wide screen: signed
// out, /account/agents sends to sign-in and back; the list; "Revoke this
// agent" on one of them asks once more; confirming revokes it and the list
// says so. Checks nothing overflows sideways and no script error or CSP
// violation shows; saves a screenshot of each page. Prints one JSON line
// for tests/it/browser.rs.
//
// usage: node account.mjs BASE_URL EMAIL AGENT_ID SCREENSHOT_PREFIX
import { launch, phonePage, signIn } from './common.mjs';

const [base, email, agent, shots] = process.argv.slice(2);
const browser = await launch();

try {
  const { page, errors, width } = await phonePage(browser);
  const main = () => page.locator('main').innerText();
  const revokeButtons = () => page.getByRole('button', { name: 'Revoke this agent' }).count();
  await page.goto(`${base}/account/agents`);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  const steps = { login: { url: page.url(), width: await width() } };
  await page.getByLabel('Email address').fill(email);
  await signIn(page, email);
  await page.getByRole('heading', { name: 'Your agents' }).waitFor();
  steps.list = { url: page.url(), text: await main(), width: await width(), buttons: await revokeButtons() };
  await page.screenshot({ path: `${shots}-list.png`, fullPage: true });
  const row = page.locator('form', { has: page.locator(`input[name="registration_id"][value="${agent}"]`) });
  await row.getByRole('button', { name: 'Revoke this agent' }).click();
  await page.getByRole('heading', { name: `Revoke agent ${agent}?` }).waitFor();
  steps.confirm = { text: await main(), width: await width() };
  await page.screenshot({ path: `${shots}-confirm.png`, fullPage: true });
  await page.getByRole('button', { name: 'Yes, revoke it' }).click();
  await page.getByRole('heading', { name: 'Your agents' }).waitFor();
  steps.revoked = { url: page.url(), text: await main(), width: await width(), buttons: await revokeButtons() };
  await page.screenshot({ path: `${shots}-revoked.png`, fullPage: true });
  console.log(JSON.stringify({ steps, errors }));
} finally {
  await browser.close();
}
