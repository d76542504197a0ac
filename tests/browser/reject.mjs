// "This wasn't me" on the confirm page, in headless Chromium on a 320 px
// screen: sign in through the link, press the reject control, see the
// question asked a second time (and the link, opened in a second tab,
// still open), confirm, then open the link again. Saves a screenshot of
// each page. Prints one JSON line for tests/it/browser.rs.
//
// usage: node reject.mjs LINK EMAIL SCREENSHOT_PREFIX
import { launch, phonePage, signIn } from './common.mjs';

const [link, email, shots] = process.argv.slice(2);
const browser = await launch();

try {
  const { page, errors, width } = await phonePage(browser);
  const main = () => page.locator('main').innerText();
  const offersAuthorize = (p) => p.getByRole('button', { name: 'Authorize' }).count();
  await page.goto(link);
  await signIn(page, email);
  await page.getByRole('heading', { name: 'An AI agent asks to act for you' }).waitFor();
  await page.getByRole('button', { name: "This wasn't me" }).click();
  await page.getByRole('heading', { name: 'Turn this agent away?' }).waitFor();
  const steps = { ask: { text: await main(), width: await width() } };
  await page.screenshot({ path: `${shots}-ask.png`, fullPage: true });
  const tab = await page.context().newPage();
  const open = await tab.goto(link);
  steps.stillOpen = { status: open.status(), offersAuthorize: await offersAuthorize(tab) };
  await tab.close();
  await page.getByRole('button', { name: "Yes, this wasn't me" }).click();
  await page.getByRole('heading', { name: 'The agent was turned away' }).waitFor();
  steps.rejected = { text: await main(), width: await width() };
  await page.screenshot({ path: `${shots}-rejected.png`, fullPage: true });
  const after = await page.goto(link);
  steps.after = { status: after.status(), text: await main(), width: await width(),
    offersAuthorize: await offersAuthorize(page) };
  await page.screenshot({ path: `${shots}-after.png`, fullPage: true });
  console.log(JSON.stringify({ steps, errors }));
} finally {
  await browser.close();
}
