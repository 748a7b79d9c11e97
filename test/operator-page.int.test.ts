import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, type Locator, type Page } from 'playwright-core';
import { launchChromium } from './support/browser';
import { loadBackofficeConfig } from '../backoffice/config';
import { startBackoffice, type RunningBackoffice } from '../backoffice/main';
import { DEVELOPMENT_SIGNING_KEY, mintToken } from '../runtime/auth';
import { asService, testLogger } from './support/env';
import { pollUntil } from './support/poll';
import { deposit, postPayment, rule, startTestStack, untilRouting, type TestStack } from './support/stack';

const ALPHA = 'alpha';
const BETA = 'beta';
const SCREENSHOT = join(__dirname, '..', 'docs', 'operator-page.png');
/** Each browser step waits at most this long for the page (Playwright's waiting locators, no sleeps). */
const STEP_MS = 10_000;
const VERSION_COLUMN = 6;

describe('operator web page', () => {
  let stack: TestStack;
  let backoffice: RunningBackoffice;
  let browser: Browser;
  let pageUrl: string;
  const tokens = { operator: '', viewer: '' };

  beforeAll(async () => {
    stack = await startTestStack({
      rules: [rule(ALPHA, { weight: 1 }), rule(BETA, { weight: 1 })],
      // Beta declines everything, so the two success rates differ; reports come fast enough for a test.
      sandboxes: { [BETA]: { mode: 'decline' } },
      orchestrator: { env: { GATEWAY_STATS_REPORT_MS: '100' } },
    });
    backoffice = await startBackoffice(loadBackofficeConfig(asService(stack.env, 'backoffice')), { logger: testLogger('backoffice') });
    pageUrl = `http://127.0.0.1:${backoffice.port}`;
    const settings = { secret: DEVELOPMENT_SIGNING_KEY, issuer: 'payment-orchestrator' };
    tokens.operator = await mintToken(settings, 'operator-ann', ['rules:read', 'rules:write']);
    tokens.viewer = await mintToken(settings, 'viewer-vic', ['rules:read']);
    browser = await launchChromium();
  }, 600_000);

  afterAll(async () => {
    await browser?.close();
    await backoffice?.stop();
    await stack?.stop();
  });

  /** A fresh tab (own sessionStorage), signed in with `token` and showing both gateways. */
  async function signedInPage(token: string): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 560 } });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_MS);
    await page.goto(`${pageUrl}/`);
    expect(new URL(page.url()).pathname).toBe('/operator/');
    await page.getByLabel('Bearer token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expectVisible(rowOf(page, ALPHA));
    await expectVisible(rowOf(page, BETA));
    return page;
  }

  const rowOf = (page: Page, gatewayId: string) => page.getByRole('row').filter({ has: page.getByRole('cell', { name: gatewayId, exact: true }) });
  const message = (page: Page) => page.getByRole('status');
  const expectVisible = (locator: Locator) => locator.waitFor({ state: 'visible' });
  /** Waits until the locator's text matches (Playwright's own polling). */
  const untilText = (locator: Locator, pattern: RegExp) => locator.filter({ hasText: pattern }).waitFor({ state: 'visible' });

  async function markUnavailable(page: Page, gatewayId: string, reason: string): Promise<void> {
    const row = rowOf(page, gatewayId);
    await row.getByRole('button', { name: 'Mark unavailable' }).click();
    await row.getByLabel(`Reason for marking ${gatewayId} unavailable`).fill(reason);
    await row.getByRole('button', { name: 'Confirm unavailable' }).click();
  }

  it('When an operator marks a gateway unavailable on the page, then the page shows it unavailable and the orchestrator stops selecting it', async () => {
    const page = await signedInPage(tokens.operator);
    await untilText(page.locator('#who'), /operator-ann/);
    // The token survives a reload of the tab (sessionStorage).
    await page.reload();
    await expectVisible(rowOf(page, ALPHA));
    expect(await rowOf(page, ALPHA).textContent()).toMatch(/EU.*available.*/);

    await markUnavailable(page, ALPHA, 'PSP maintenance');
    await untilText(rowOf(page, ALPHA), /unavailable\s*PSP maintenance/);
    await untilText(message(page), /alpha is marked unavailable: PSP maintenance/);
    await expectVisible(rowOf(page, ALPHA).getByRole('button', { name: 'Mark available' }));
    expect(await rowOf(page, BETA).textContent()).not.toMatch(/unavailable\s*PSP/);

    await untilRouting(stack.baseUrl, (view) => view.gateways.some((g) => g.gatewayId === ALPHA && !g.available));
    const chosen: string[] = [];
    for (let sent = 0; sent < 8; sent += 1) {
      const { status, body } = await postPayment(stack.baseUrl, deposit());
      expect(status).toBe(202);
      chosen.push((body as { attempts: Array<{ gatewayId: string }> }).attempts[0]?.gatewayId ?? 'none');
    }
    expect(new Set(chosen)).toEqual(new Set([BETA]));

    mkdirSync(join(SCREENSHOT, '..'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    await rowOf(page, ALPHA).getByRole('button', { name: 'Mark available' }).click();
    await untilText(message(page), /alpha is available again/);
    await expectVisible(rowOf(page, ALPHA).getByRole('button', { name: 'Mark unavailable' }));
    await untilRouting(stack.baseUrl, (view) => view.gateways.some((g) => g.gatewayId === ALPHA && g.available));
    await page.context().close();
  });

  it('When a viewer with only rules:read marks a gateway unavailable, then the page shows the 403 and the gateway stays available', async () => {
    const page = await signedInPage(tokens.viewer);
    await markUnavailable(page, BETA, 'should not happen');
    await untilText(message(page), /Mark beta unavailable failed: 403 — this operation needs the rules:write scope/);
    expect(await message(page).getAttribute('class')).toBe('error');
    const beta = await fetch(`${pageUrl}/v1/gateways/${BETA}`, { headers: { authorization: `Bearer ${tokens.viewer}` } });
    expect(((await beta.json()) as { available: boolean }).available).toBe(true);
    await page.context().close();
  });

  it('When an operator saves a weight from a stale page, then the page asks to reload with the 412, and after Reload the save goes through', async () => {
    const page = await signedInPage(tokens.operator);
    const seen = Number(await rowOf(page, BETA).getByRole('cell').nth(VERSION_COLUMN).textContent());

    // Someone else changes beta after this page read it.
    const current = await fetch(`${pageUrl}/v1/gateways/${BETA}`, { headers: { authorization: `Bearer ${tokens.operator}` } });
    const { rule: currentRule } = (await current.json()) as { rule: Record<string, unknown> };
    const other = await fetch(`${pageUrl}/v1/gateways/${BETA}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${tokens.operator}`, 'content-type': 'application/json', 'If-Match': String(current.headers.get('etag')) },
      body: JSON.stringify({ ...currentRule, weight: 2 }),
    });
    expect(other.status).toBe(200);

    await rowOf(page, BETA).getByRole('spinbutton', { name: 'Weight of beta' }).fill('5');
    await rowOf(page, BETA).getByRole('button', { name: 'Save weight of beta' }).click();
    await untilText(message(page), /412.*Press Reload/);

    await page.getByRole('button', { name: 'Reload' }).click();
    await untilText(rowOf(page, BETA).getByRole('cell').nth(VERSION_COLUMN), new RegExp(`^${seen + 1}$`));
    expect(await rowOf(page, BETA).getByRole('spinbutton', { name: 'Weight of beta' }).inputValue()).toBe('2');
    await rowOf(page, BETA).getByRole('spinbutton', { name: 'Weight of beta' }).fill('5');
    await rowOf(page, BETA).getByRole('button', { name: 'Save weight of beta' }).click();
    await untilText(message(page), new RegExp(`Weight of beta is now 5 \\(version ${seen + 2}\\)`));
    expect(await rowOf(page, BETA).getByRole('spinbutton', { name: 'Weight of beta' }).inputValue()).toBe('5');
    await untilRouting(stack.baseUrl, (view) => view.gateways.some((g) => g.gatewayId === BETA && g.weight === 5));
    await page.context().close();
  });

  it("When payments have gone through both gateways, then the page shows each gateway's recent success rate from the orchestrators' reports", async () => {
    // Beta weighs 5 to alpha's 1 by now (the test above), and its declines are business outcomes that do not weigh it
    // down: 60 payments leave alpha without one with a chance of (5/6)^60, about 2 in 100,000.
    for (let sent = 0; sent < 60; sent += 1) expect((await postPayment(stack.baseUrl, deposit())).status).toBe(202);

    // The reports arrive on their own schedule: wait (bounded) until the back office has both gateways' outcomes.
    type Listed = { gateways: Array<{ gatewayId: string; recentSuccess: { rate: number; successes: number; declines: number; attempts: number; windowSeconds: number } | null }> };
    const rateIn = (listed: Listed, gatewayId: string) => listed.gateways.find((gateway) => gateway.gatewayId === gatewayId)?.recentSuccess;
    const listed = await pollUntil(
      async () => (await (await fetch(`${pageUrl}/v1/gateways`, { headers: { authorization: `Bearer ${tokens.viewer}` } })).json()) as Listed,
      (view) => (rateIn(view, ALPHA)?.successes ?? 0) > 0 && (rateIn(view, BETA)?.declines ?? 0) > 0,
      15_000,
      (view) => `success rates never reported: ${JSON.stringify(view)}`,
      50,
    );
    const rateOf = (gatewayId: string) => rateIn(listed, gatewayId);
    expect(rateOf(ALPHA)).toMatchObject({ rate: 1, declines: 0, windowSeconds: 300 });
    expect(rateOf(BETA)).toMatchObject({ rate: 0, successes: 0, windowSeconds: 300 });

    const page = await signedInPage(tokens.viewer);
    await untilText(rowOf(page, ALPHA), /100\.0 % of \d+/);
    await untilText(rowOf(page, BETA), /0\.0 % of \d+/);
    expect(await rowOf(page, BETA).getByRole('cell').nth(VERSION_COLUMN - 1).getAttribute('title')).toMatch(/\d+ declined/);
    await page.context().close();
  });
});
