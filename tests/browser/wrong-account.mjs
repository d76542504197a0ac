// A claim link opened while signed in as someone else, in headless
// Chromium on a 320 px screen: sign in as OTHER, open the link for OWNER,
// read the wrong-account page, switch account through it, sign in as
// OWNER and land on the confirm page. Saves a screenshot of each page.
// Prints one JSON line for tests/it/browser.rs.
//
// usage: node wrong-account.mjs BASE_URL LINK OTHER OWNER SCREENSHOT_PREFIX
import { launch, phonePage, signIn } from './common.mjs';

const [base, link, other, owner, shots] = process.argv.slice(2);
const browser = await launch();

try {
  const { page, errors, width } = await phonePage(browser);
  await page.goto(`${base}/login?return_to=%2F`);
  await page.getByLabel('Email address').fill(other);
  await signIn(page, other);
  await page.getByRole('heading', { name: 'Signed in' }).waitFor();
  const wrong = await page.goto(link);
  const steps = { wrong: { status: wrong.status(), text: await page.locator('main').innerText(), width: await width() } };
  await page.screenshot({ path: `${shots}-wrong.png`, fullPage: true });
  await page.getByRole('button', { name: 'Sign out and switch account' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  steps.login = { url: page.url(), prefilled: await page.getByLabel('Email address').inputValue(), width: await width() };
  await page.screenshot({ path: `${shots}-login.png`, fullPage: true });
  await signIn(page, owner);
  await page.getByRole('heading', { name: 'An AI agent asks to act for you' }).waitFor();
  steps.confirm = { url: page.url(), text: await page.locator('main').innerText(), width: await width(),
    offersAuthorize: await page.getByRole('button', { name: 'Authorize' }).count() };
  await page.screenshot({ path: `${shots}-confirm.png`, fullPage: true });
  console.log(JSON.stringify({ steps, errors }));
} finally {
  await browser.close();
}
