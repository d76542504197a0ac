// The current generation's claim ceremony as a person meets it, in headless
// Chromium on a 320 px screen: open the link the agent handed over, get
// sent to sign in, sign in with the mailed code, come back to the page,
// press Authorize, read the code. Checks nothing overflows sideways and no
// script error or CSP violation shows; saves a screenshot of each step.
// Prints one JSON line for tests/it/browser.rs.
//
// usage: node ceremony.mjs LINK EMAIL SCREENSHOT_PREFIX
import { launch, phonePage, signIn } from './common.mjs';

const [link, email, shots] = process.argv.slice(2);
const browser = await launch();

try {
  const { page, errors, width } = await phonePage(browser);
  await page.goto(link);
  const steps = { login: { url: page.url(), prefilled: await page.getByLabel('Email address').inputValue() } };
  await signIn(page, email);
  await page.getByRole('heading', { name: 'An AI agent asks to act for you' }).waitFor();
  steps.confirm = { url: page.url(), text: await page.locator('main').innerText(), width: await width(),
    hasCode: await page.locator('#user-code').count() };
  await page.screenshot({ path: `${shots}-confirm.png`, fullPage: true });
  await page.getByRole('button', { name: 'Authorize' }).click();
  await page.locator('#user-code').waitFor();
  steps.code = { value: (await page.locator('#user-code').textContent()).trim(), width: await width() };
  await page.screenshot({ path: `${shots}-code.png`, fullPage: true });
  console.log(JSON.stringify({ steps, errors }));
} finally {
  await browser.close();
}
