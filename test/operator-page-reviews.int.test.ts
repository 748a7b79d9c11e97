import { type Browser, type Locator, type Page } from 'playwright-core';
import { launchChromium } from './support/browser';
import { loadBackofficeConfig } from '../backoffice/config';
import { startBackoffice, type RunningBackoffice } from '../backoffice/main';
import { DEVELOPMENT_SIGNING_KEY, mintToken } from '../runtime/auth';
import { asService, testLogger } from './support/env';
import { deposit, getPayment, postPayment, rule, startTestStack, untilPayment, watchStatuses, type TestStack } from './support/stack';

/** Each browser step waits at most this long for the page (Playwright's waiting locators, no sleeps). */
const STEP_MS = 10_000;

/**
 * The reviews section of the operator page in Chromium: "first" hangs, so a withdrawal sent there (random source
 * 0 picks it) is flagged for review two seconds later; "second" is healthy.
 */
describe('operator web page: reviews', () => {
  let stack: TestStack;
  let statuses: Awaited<ReturnType<typeof watchStatuses>>;
  let backoffice: RunningBackoffice;
  let browser: Browser;
  let pageUrl: string;
  const tokens = { resolver: '', rulesOnly: '' };

  beforeAll(async () => {
    stack = await startTestStack({
      rules: [rule('first', { timeoutMs: 1_000 }), rule('second', { timeoutMs: 1_000 })],
      sandboxes: { first: { mode: 'hang' } },
      orchestrator: { random: () => 0, env: { TIMEOUT_POLL_MS: '20', OUTLIER_CONSECUTIVE_FAILURES: '1000', BREAKER_VOLUME_THRESHOLD: '1000' } },
    });
    statuses = await watchStatuses(stack);
    backoffice = await startBackoffice(loadBackofficeConfig({ ...asService(stack.env, 'backoffice'), ORCHESTRATOR_URL: stack.baseUrl }), { logger: testLogger('backoffice') });
    pageUrl = `http://127.0.0.1:${backoffice.port}`;
    const settings = { secret: DEVELOPMENT_SIGNING_KEY, issuer: 'payment-orchestrator' };
    tokens.resolver = await mintToken(settings, 'ops-olga', ['rules:read', 'reviews:read', 'reviews:resolve']);
    tokens.rulesOnly = await mintToken(settings, 'viewer-vic', ['rules:read']);
    browser = await launchChromium();
  }, 600_000);

  afterAll(async () => {
    await browser?.close();
    await backoffice?.stop();
    await statuses?.stop();
    await stack?.stop();
  });

  async function signedInPage(token: string): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_MS);
    await page.goto(`${pageUrl}/operator/`);
    await page.getByLabel('Bearer token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Payments in review' }).waitFor({ state: 'visible' });
    return page;
  }

  const message = (page: Page) => page.getByRole('status');
  const untilText = (locator: Locator, pattern: RegExp) => locator.filter({ hasText: pattern }).waitFor({ state: 'visible' });
  const reviewRow = (page: Page, paymentId: string) => page.getByRole('row').filter({ hasText: paymentId });

  async function withdrawalInReview(): Promise<string> {
    const accepted = await postPayment(stack.baseUrl, deposit({ type: 'withdrawal' }));
    expect(accepted.status).toBe(202);
    const id = String(accepted.body.id);
    await untilPayment(stack.baseUrl, id, (payment) => payment.review !== undefined);
    return id;
  }

  it('When an operator resolves a review as "the gateway did not pay" with a note on the page, then the withdrawal fails over and succeeds, and the page says so', async () => {
    const id = await withdrawalInReview();
    const page = await signedInPage(tokens.resolver);
    const row = reviewRow(page, id);
    await untilText(row, /#1 at first/);
    expect(await row.textContent()).toMatch(/cancel-unconfirmed/);
    expect(await row.textContent()).toMatch(/nothing: no answer/);

    // The note is mandatory: an empty one is refused on the page, and nothing is sent.
    await row.getByRole('button', { name: `Resolve review of ${id}` }).click();
    await untilText(message(page), new RegExp(`Write a note for ${id}`));
    expect((await getPayment(stack.baseUrl, id)).review).toBeDefined();

    await row.getByLabel(`Decision for ${id}`).selectOption('not-paid');
    await row.getByLabel(`Note for ${id}`).fill('PSP ticket 4711: the payout was never sent');
    await row.getByRole('button', { name: `Resolve review of ${id}` }).click();
    await untilText(message(page), new RegExp(`Review of ${id} resolved \\(The gateway did not pay\\)`));
    await reviewRow(page, id).waitFor({ state: 'detached' });

    const [terminal] = await statuses.untilTerminal([id]);
    expect(terminal).toMatchObject({ status: 'SUCCESS', gatewayId: 'second' });
    const settled = await getPayment(stack.baseUrl, id);
    expect(settled.resolutions).toEqual([expect.objectContaining({ decision: 'not-paid', actor: 'ops-olga', note: 'PSP ticket 4711: the payout was never sent' })]);
    await page.context().close();
  });

  it('When a token without reviews:read signs in, then the page shows the gateways and says which scope the reviews need', async () => {
    const page = await signedInPage(tokens.rulesOnly);
    await untilText(page.locator('#reviews-note'), /403 — this operation needs the reviews:read scope/);
    expect(await page.locator('#reviews-table').isHidden()).toBe(true);
    await page.context().close();
  });
});
