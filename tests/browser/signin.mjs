// Signs in at authmd as a person would, in headless Chromium on a 320 px
// wide screen: the form, the mailed code, the signed-in page. Checks
// nothing overflows sideways and no script error or CSP violation shows;
// saves a screenshot of each step. Prints one JSON line for
// tests/it/browser.rs.
//
// usage: node signin.mjs BASE_URL EMAIL SCREENSHOT_PREFIX
import { launch, mailedCode, phonePage } from './common.mjs';

const [base, email, shots] = process.argv.slice(2);
const browser = await launch();

try {
  const { page, errors, width } = await phonePage(browser);
  const form = await page.goto(`${base}/login?return_to=%2F`);
  const steps = { form: { status: form.status(), width: await width() } };
  await page.screenshot({ path: `${shots}-form.png`, fullPage: true });
  await page.getByLabel('Email address').fill(email);
  await page.getByRole('button', { name: 'Send me a code' }).click();
  await page.getByRole('heading', { name: 'Check your email' }).waitFor();
  steps.sent = { width: await width() };
  await page.screenshot({ path: `${shots}-code.png`, fullPage: true });
  await page.getByLabel('Code').fill(await mailedCode(email));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Signed in' }).waitFor();
  steps.signedIn = { url: page.url(), text: await page.locator('main').innerText(), width: await width() };
  await page.screenshot({ path: `${shots}-signed-in.png`, fullPage: true });
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  steps.signedOut = { url: page.url() };
  console.log(JSON.stringify({ steps, errors }));
} finally {
  await browser.close();
}
