import { loadBackofficeConfig } from '../backoffice/config';
import { startBackoffice, type RunningBackoffice } from '../backoffice/main';
import { DEVELOPMENT_SIGNING_KEY, mintToken } from '../runtime/auth';
import type { GatewayRule } from '../topics/schemas';
import { asService, testLogger } from './support/env';
import { pollUntil } from './support/poll';
import { deposit, postPayment, publishRules, rule, startTestStack, untilRouting, type TestStack } from './support/stack';

// One gateway serving EUR and JPY with a bound per currency, and a fallback serving both without a cap that
// matters: which one a payment goes to says which bound selection applied.
const BOUNDED = 'bounded';
const FALLBACK = 'fallback';
const BOUNDS = { EUR: { min: '100', max: '500000' }, JPY: { min: '100', max: '80000000' } };

interface ErrorView {
  error: { code: string; message: string; field?: string };
}

describe('amount bounds per currency', () => {
  let stack: TestStack;
  let backoffice: RunningBackoffice;
  let backofficeUrl: string;
  let operator: string;

  const put = async (gatewayId: string, body: unknown, ifMatch?: string) => {
    const response = await fetch(`${backofficeUrl}/v1/gateways/${gatewayId}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${operator}`, 'content-type': 'application/json', ...(ifMatch ? { 'If-Match': ifMatch } : {}) },
      body: JSON.stringify(body),
    });
    return { status: response.status, etag: response.headers.get('etag'), body: (await response.json()) as Record<string, unknown> };
  };
  const firstGateway = (body: Record<string, unknown>) => (body as { attempts: Array<{ gatewayId: string }> }).attempts[0]?.gatewayId;

  beforeAll(async () => {
    stack = await startTestStack({
      rules: [rule(BOUNDED, { currencies: ['EUR', 'JPY'], amountBounds: BOUNDS, weight: 1000 }), rule(FALLBACK, { currencies: ['EUR', 'JPY'], weight: 1 })],
      // Always the first candidate (sorted by id): 'bounded' whenever its bound lets the payment through.
      orchestrator: { random: () => 0 },
    });
    backoffice = await startBackoffice(loadBackofficeConfig(asService(stack.env, 'backoffice')), { logger: testLogger('backoffice') });
    backofficeUrl = `http://127.0.0.1:${backoffice.port}`;
    operator = await mintToken({ secret: DEVELOPMENT_SIGNING_KEY, issuer: 'payment-orchestrator' }, 'operator-ann', ['rules:read', 'rules:write']);
  });
  afterAll(async () => {
    await backoffice?.stop();
    await stack?.stop();
  });

  test("When the same number of minor units is paid in EUR and in JPY, then selection applies the payment's own currency's bound", async () => {
    // 1,000,000 minor units: 10,000 EUR (over the EUR cap of 5,000) but 1,000,000 JPY (within the JPY cap).
    const eur = await postPayment(stack.baseUrl, deposit({ currency: 'EUR', amount: '1000000' }));
    const jpy = await postPayment(stack.baseUrl, deposit({ currency: 'JPY', amount: '1000000' }));
    expect([eur.status, jpy.status]).toEqual([202, 202]);
    expect(firstGateway(eur.body)).toBe(FALLBACK);
    expect((eur.body as { attempts: Array<{ routing: unknown }> }).attempts[0]?.routing).toMatchObject({ excluded: [{ gatewayId: BOUNDED, reason: 'above-max-amount' }] });
    expect(firstGateway(jpy.body)).toBe(BOUNDED);

    const smallEur = await postPayment(stack.baseUrl, deposit({ currency: 'EUR', amount: '400000' }));
    expect(firstGateway(smallEur.body)).toBe(BOUNDED);
  });

  test('When an operator sends a rule serving a currency without a bound for it, then the back office answers 400 naming amountBounds.<currency> and publishes nothing', async () => {
    const { gatewayId: _id, ...body } = rule('newgw', { currencies: ['EUR', 'JPY'], amountBounds: { EUR: BOUNDS.EUR } });
    const missing = await put('newgw', body);
    expect(missing.status).toBe(400);
    expect((missing.body as unknown as ErrorView).error).toMatchObject({ code: 'invalid_request', field: 'amountBounds.JPY' });
    expect((missing.body as unknown as ErrorView).error.message).toMatch(/JPY/);

    const noMax = await put('newgw', { ...body, amountBounds: { ...BOUNDS, JPY: { min: '100' } } });
    expect([noMax.status, (noMax.body as unknown as ErrorView).error.field]).toEqual([400, 'amountBounds.JPY.max']);
    const inverted = await put('newgw', { ...body, amountBounds: { ...BOUNDS, EUR: { min: '600', max: '500' } } });
    expect([inverted.status, (inverted.body as unknown as ErrorView).error.field]).toEqual([400, 'amountBounds.EUR.max']);
    const unserved = await put('newgw', { ...body, amountBounds: { ...BOUNDS, USD: BOUNDS.EUR } });
    expect([unserved.status, (unserved.body as unknown as ErrorView).error.field]).toEqual([400, 'amountBounds.USD']);
    const legacy = await put('newgw', { ...body, amountBounds: BOUNDS, maxAmount: '500' });
    expect([legacy.status, (legacy.body as unknown as ErrorView).error.field]).toEqual([400, 'maxAmount']);

    const got = await fetch(`${backofficeUrl}/v1/gateways/newgw`, { headers: { authorization: `Bearer ${operator}` } });
    expect(got.status).toBe(404);
  });

  test('When an operator changes a currency bound through the back office, then the orchestrators route by the new bound', async () => {
    const current = await fetch(`${backofficeUrl}/v1/gateways/${BOUNDED}`, { headers: { authorization: `Bearer ${operator}` } });
    const view = (await current.json()) as { rule: Omit<GatewayRule, 'gatewayId'> };
    const raised = { ...BOUNDS, EUR: { min: '100', max: '2000000' } };
    const answer = await put(BOUNDED, { ...view.rule, amountBounds: raised }, String(current.headers.get('etag')));
    expect(answer.status).toBe(200);
    await untilRouting(stack.baseUrl, (routing) => routing.gateways.some((gateway) => gateway.gatewayId === BOUNDED && gateway.amountBounds?.EUR?.max === '2000000'));

    const eur = await postPayment(stack.baseUrl, deposit({ currency: 'EUR', amount: '1000000' }));
    expect(firstGateway(eur.body)).toBe(BOUNDED);
  });

  test('When a rule without bounds reaches the topic another way (by hand, from before bounds per currency), then no payment is routed to it; the back office still marks it unavailable, but refuses to make it available or publish it again as it is until a whole rule with bounds is sent', async () => {
    // First by id and by far the heaviest: selection would pick it for every EUR payment if it were served.
    const LEGACY = 'a-legacy';
    const { amountBounds: _bounds, ...unbounded } = rule(LEGACY, { currencies: ['EUR'], weight: 1000 });
    await publishRules(stack.kafka, stack.topics, [{ ...unbounded, minAmount: '100', maxAmount: '100000000' } as GatewayRule]);
    await untilRouting(stack.baseUrl, (routing) => routing.gateways.some((gateway) => gateway.gatewayId === LEGACY));

    const eur = await postPayment(stack.baseUrl, deposit({ currency: 'EUR', amount: '10000' }));
    expect(eur.status).toBe(202);
    const routing = (eur.body as { attempts: Array<{ routing: { chosen: string; excluded: unknown[] } }> }).attempts[0]?.routing;
    expect(routing?.chosen).toBe(BOUNDED);
    expect(routing?.excluded).toContainEqual({ gatewayId: LEGACY, reason: 'no-amount-bound' });

    const headers = { authorization: `Bearer ${operator}`, 'content-type': 'application/json' };
    const read = () => fetch(`${backofficeUrl}/v1/gateways/${LEGACY}`, { headers });
    await pollUntil(read, (response) => response.status === 200, 10_000, (response) => `the back office never saw ${LEGACY}: ${response.status}`);
    const mark = (state: 'available' | 'unavailable') =>
      fetch(`${backofficeUrl}/v1/gateways/${LEGACY}/${state}`, { method: 'POST', headers, body: JSON.stringify(state === 'unavailable' ? { reason: 'PSP maintenance' } : {}) });
    // Taking it out of routing is never refused: an operator in an incident must not be told to fix a rule first.
    expect((await mark('unavailable')).status).toBe(200);
    const refused = await mark('available');
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as ErrorView).error).toMatchObject({ code: 'invalid_rule', field: 'amountBounds.EUR', message: expect.stringMatching(/PUT/) });

    const reread = await read();
    const { rule: held } = (await reread.json()) as { rule: Omit<GatewayRule, 'gatewayId'> };
    const fixed = await put(LEGACY, { ...held, amountBounds: { EUR: BOUNDS.EUR } }, String(reread.headers.get('etag')));
    expect(fixed.status).toBe(200);
    expect((await mark('available')).status).toBe(200);
  });
});
