import type { Admin } from 'kafkajs';
import { loadBackofficeConfig } from '../backoffice/config';
import { startBackoffice, type RunningBackoffice } from '../backoffice/main';
import { DEVELOPMENT_SIGNING_KEY, mintToken } from '../runtime/auth';
import type { GatewayRule } from '../topics/schemas';
import { asService, testLogger } from './support/env';
import { pollUntil } from './support/poll';
import { deposit, postPayment, rule, startTestStack, untilRouting, type TestStack } from './support/stack';

const ALPHA = 'alpha';
const BETA = 'beta';
const ISSUER = 'payment-orchestrator';

interface Answer<T = Record<string, unknown>> {
  status: number;
  etag: string | null;
  body: T;
}

interface GatewayView {
  gatewayId: string;
  version: number;
  available: boolean;
  unavailableReason?: string;
  breaker: string;
  changedBy: string;
  rule: Omit<GatewayRule, 'gatewayId'>;
  warnings?: Array<{ code: string; region: string }>;
}

interface AuditView {
  gatewayId: string;
  entries: Array<{ actor: string; action: string; version: number; changedFields: string[]; reason?: string; before: GatewayRule | null; after: GatewayRule | null }>;
}

interface ErrorView {
  error: { code: string; message: string; field?: string };
}

describe('back office rules API', () => {
  let stack: TestStack;
  let admin: Admin;
  let backoffice: RunningBackoffice;
  let baseUrl: string;
  const tokens: Record<'operator' | 'viewer' | 'payments' | 'foreign', string> = { operator: '', viewer: '', payments: '', foreign: '' };

  const start = async () => {
    backoffice = await startBackoffice(loadBackofficeConfig(asService(stack.env, 'backoffice')), { logger: testLogger('backoffice') });
    baseUrl = `http://127.0.0.1:${backoffice.port}`;
  };

  /** Calls the back office; `token: null` sends no Authorization header. */
  async function call<T = Record<string, unknown>>(
    method: string,
    path: string,
    options: { token?: string | null; body?: unknown; headers?: Record<string, string> } = {},
  ): Promise<Answer<T>> {
    const token = options.token === undefined ? tokens.operator : options.token;
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers: {
        ...(token === null ? {} : { authorization: `Bearer ${token}` }),
        ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
        ...options.headers,
      },
      ...(options.body === undefined ? {} : { body: typeof options.body === 'string' ? options.body : JSON.stringify(options.body) }),
    });
    return { status: response.status, etag: response.headers.get('etag'), body: (await response.json()) as T };
  }

  const getGateway = (gatewayId: string) => call<GatewayView>('GET', `/v1/gateways/${gatewayId}`);

  /** Reads a gateway, then replaces its rule with some fields changed, based on the version read. */
  async function updateRule(gatewayId: string, fields: Partial<Omit<GatewayRule, 'gatewayId'>>): Promise<Answer<GatewayView>> {
    const current = await getGateway(gatewayId);
    expect(current.status).toBe(200);
    return call<GatewayView>('PUT', `/v1/gateways/${gatewayId}`, { body: { ...current.body.rule, ...fields }, headers: { 'If-Match': String(current.etag) } });
  }

  /** Messages ever written to a topic (sum of the partitions' end offsets). */
  async function messagesOn(topic: string): Promise<number> {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((sum, partition) => sum + Number(partition.high), 0);
  }

  /** The gateway chosen for each of `count` new deposits. */
  async function chosenGateways(count: number): Promise<string[]> {
    const chosen: string[] = [];
    for (let sent = 0; sent < count; sent += 1) {
      const { status, body } = await postPayment(stack.baseUrl, deposit());
      expect(status).toBe(202);
      chosen.push((body as { attempts: Array<{ gatewayId: string }> }).attempts[0]?.gatewayId ?? 'none');
    }
    return chosen;
  }

  function untilAudit(gatewayId: string, ready: (trail: AuditView) => boolean, timeoutMs = 10_000): Promise<AuditView> {
    return pollUntil(
      async () => (await call<AuditView>('GET', `/v1/gateways/${gatewayId}/audit`)).body,
      ready,
      timeoutMs,
      (body) => `audit trail not as expected after ${timeoutMs} ms: ${JSON.stringify(body)}`,
      20,
    );
  }

  beforeAll(async () => {
    stack = await startTestStack({ rules: [rule(ALPHA, { weight: 1 }), rule(BETA, { weight: 0 })] });
    admin = stack.kafka.admin();
    await admin.connect();
    const settings = { secret: DEVELOPMENT_SIGNING_KEY, issuer: ISSUER };
    tokens.operator = await mintToken(settings, 'operator-ann', ['rules:read', 'rules:write']);
    tokens.viewer = await mintToken(settings, 'viewer-vic', ['rules:read']);
    tokens.payments = await mintToken(settings, 'platform', ['payments:write', 'payments:read']);
    tokens.foreign = await mintToken({ secret: 'another-key-that-is-long-enough-0123456789', issuer: ISSUER }, 'mallory', ['rules:read', 'rules:write']);
    await start();
  });

  afterAll(async () => {
    await backoffice?.stop();
    await admin?.disconnect();
    await stack?.stop();
  });

  it('When the back office starts, then it lists the rules from the rule topic with their version and live breaker state', async () => {
    const { status, body } = await call<{ gateways: GatewayView[] }>('GET', '/v1/gateways', { token: tokens.viewer });
    expect(status).toBe(200);
    expect(body.gateways.map((gateway) => gateway.gatewayId)).toEqual([ALPHA, BETA]);
    const alpha = await getGateway(ALPHA);
    expect(alpha.etag).toBe(`"${alpha.body.version}"`);
    expect(alpha.body).toMatchObject({ gatewayId: ALPHA, available: true, breaker: expect.any(String), rule: { weight: 1, regions: ['EU'] } });
  });

  it('When an operator flips the weights 1:0 to 0:1, then the orchestrator shows it and new payments follow it, with a warning while no gateway serves EU', async () => {
    expect(new Set(await chosenGateways(5))).toEqual(new Set([ALPHA]));

    const alphaOff = await updateRule(ALPHA, { weight: 0 });
    expect(alphaOff.status).toBe(200);
    expect(alphaOff.body.warnings).toEqual([expect.objectContaining({ code: 'region_without_available_gateway', region: 'EU' })]);
    const betaOn = await updateRule(BETA, { weight: 1 });
    expect(betaOn.status).toBe(200);
    expect(betaOn.body.warnings).toEqual([]);

    await untilRouting(stack.baseUrl, (view) => view.gateways.some((g) => g.gatewayId === ALPHA && g.weight === 0) && view.gateways.some((g) => g.gatewayId === BETA && g.weight === 1));
    expect(new Set(await chosenGateways(10))).toEqual(new Set([BETA]));
  });

  it('When an operator marks a gateway unavailable, then no new payment goes to it until it is marked available again', async () => {
    expect((await updateRule(ALPHA, { weight: 1 })).status).toBe(200);
    expect((await updateRule(BETA, { weight: 1 })).status).toBe(200);

    const marked = await call<GatewayView>('POST', `/v1/gateways/${ALPHA}/unavailable`, { body: { reason: 'PSP maintenance' } });
    expect(marked.status).toBe(200);
    expect(marked.body).toMatchObject({ available: false, unavailableReason: 'PSP maintenance', changedBy: 'operator-ann' });
    await untilRouting(stack.baseUrl, (view) => view.gateways.some((g) => g.gatewayId === ALPHA && !g.available));
    expect(new Set(await chosenGateways(20))).toEqual(new Set([BETA]));

    const back = await call<GatewayView>('POST', `/v1/gateways/${ALPHA}/available`, { body: {} });
    expect(back.status).toBe(200);
    expect(back.body.available).toBe(true);
    expect(back.body.unavailableReason).toBeUndefined();
    await untilRouting(stack.baseUrl, (view) => view.gateways.some((g) => g.gatewayId === ALPHA && g.available && g.weight === 1));
    let toAlpha = 0;
    for (let round = 0; round < 10 && toAlpha === 0; round += 1) toAlpha = (await chosenGateways(10)).filter((id) => id === ALPHA).length;
    expect(toAlpha).toBeGreaterThan(0);
  });

  it('When two updates based on the same version race, then exactly one is applied and the other gets 412', async () => {
    const current = await getGateway(BETA);
    const put = (weight: number) =>
      call<GatewayView & ErrorView>('PUT', `/v1/gateways/${BETA}`, { body: { ...current.body.rule, weight }, headers: { 'If-Match': String(current.etag) } });
    const answers = await Promise.all([put(7), put(8)]);
    expect(answers.map((answer) => answer.status).sort()).toEqual([200, 412]);
    const winner = answers.find((answer) => answer.status === 200);
    const loser = answers.find((answer) => answer.status === 412);
    expect(loser?.body.error.code).toBe('precondition_failed');
    const after = await getGateway(BETA);
    expect(after.body.version).toBe(current.body.version + 1);
    expect(after.body.rule.weight).toBe(winner?.body.rule.weight);
  });

  it('When an update has no If-Match or a stale one, then it answers 428 or 412 and changes nothing', async () => {
    const current = await getGateway(BETA);
    const body = { ...current.body.rule, weight: 9 };
    const missing = await call<ErrorView>('PUT', `/v1/gateways/${BETA}`, { body });
    expect(missing.status).toBe(428);
    expect(missing.body.error.code).toBe('precondition_required');
    const stale = await call<ErrorView>('PUT', `/v1/gateways/${BETA}`, { body, headers: { 'If-Match': `"${current.body.version - 1}"` } });
    expect(stale.status).toBe(412);
    expect(stale.etag).toBe(current.etag);
    const noDelete = await call<ErrorView>('DELETE', `/v1/gateways/${BETA}`);
    expect(noDelete.status).toBe(428);
    expect((await getGateway(BETA)).body).toEqual(current.body);
  });

  it('When a field is bad, then the answer is 400 naming it', async () => {
    const current = await getGateway(BETA);
    const headers = { 'If-Match': String(current.etag) };
    const cases: Array<[unknown, string]> = [
      [{ ...current.body.rule, weight: -1 }, 'weight'],
      [{ ...current.body.rule, regions: [] }, 'regions'],
      [{ ...current.body.rule, currencies: ['euro'] }, 'currencies.0'],
      [{ ...current.body.rule, amountBounds: { ...current.body.rule.amountBounds, EUR: { min: '500', max: '100' } } }, 'amountBounds.EUR.max'],
      [{ ...current.body.rule, amountBounds: { USD: { min: '1', max: '100' } } }, 'amountBounds.EUR'],
      [{ ...current.body.rule, minAmount: '500' }, 'minAmount'],
      [{ ...current.body.rule, gatewayId: BETA }, 'gatewayId'],
      [{ ...current.body.rule, timeoutMs: undefined }, 'timeoutMs'],
    ];
    for (const [body, field] of cases) {
      const answer = await call<ErrorView>('PUT', `/v1/gateways/${BETA}`, { body, headers });
      expect({ field, status: answer.status, named: answer.body.error.field }).toEqual({ field, status: 400, named: field });
    }
    expect((await call<ErrorView>('PUT', `/v1/gateways/${BETA}`, { body: current.body.rule, headers: { 'If-Match': '3' } })).body.error.field).toBe('If-Match');
    expect((await call<ErrorView>('PUT', '/v1/gateways/Not_An_Id', { body: current.body.rule })).body.error.field).toBe('id');
    expect((await call<ErrorView>('POST', `/v1/gateways/${BETA}/unavailable`, { body: {} })).body.error.field).toBe('reason');
    expect((await getGateway(BETA)).body.version).toBe(current.body.version);
  });

  it('When a write comes without a token, with a bad one or with only rules:read, then it answers 401 or 403 and publishes nothing', async () => {
    const current = await getGateway(BETA);
    const headers = { 'If-Match': String(current.etag) };
    const writes: Array<{ method: string; path: string; body?: unknown }> = [
      { method: 'PUT', path: `/v1/gateways/${BETA}`, body: { ...current.body.rule, weight: 5 } },
      { method: 'PUT', path: '/v1/gateways/delta', body: current.body.rule },
      { method: 'DELETE', path: `/v1/gateways/${BETA}` },
      { method: 'POST', path: `/v1/gateways/${BETA}/unavailable`, body: { reason: 'nope' } },
      { method: 'POST', path: `/v1/gateways/${BETA}/available`, body: {} },
    ];
    const refusals: Array<{ token: string | null; status: number }> = [
      { token: null, status: 401 },
      { token: 'not-a-jwt', status: 401 },
      { token: tokens.foreign, status: 401 },
      { token: tokens.payments, status: 403 },
      { token: tokens.viewer, status: 403 },
    ];
    const topics = [stack.topics.rules, stack.topics.audit];
    const before = await Promise.all(topics.map(messagesOn));
    for (const write of writes) {
      for (const refusal of refusals) {
        const answer = await call<ErrorView>(write.method, write.path, { token: refusal.token, body: write.body, headers });
        expect({ ...write, token: refusal.token?.slice(0, 12) ?? null, status: answer.status }).toEqual({ ...write, token: refusal.token?.slice(0, 12) ?? null, status: refusal.status });
      }
    }
    expect(await Promise.all(topics.map(messagesOn))).toEqual(before);
    expect((await call('GET', '/v1/gateways', { token: null })).status).toBe(401);
    expect((await call('GET', '/v1/gateways', { token: tokens.payments })).status).toBe(403);
    expect((await getGateway(BETA)).body).toEqual(current.body);
  });

  it('When an operator creates and removes a gateway, then versions keep increasing and the audit trail lists who did what, before and after', async () => {
    const gamma = rule('gamma', { regions: ['APAC'] });
    const { gatewayId: _id, ...gammaBody } = gamma;
    const created = await call<GatewayView>('PUT', '/v1/gateways/gamma', { body: gammaBody, headers: { 'If-None-Match': '*' } });
    expect(created.status).toBe(201);
    expect(created.etag).toBe('"1"');
    const again = await call<ErrorView>('PUT', '/v1/gateways/gamma', { body: gammaBody, headers: { 'If-None-Match': '*' } });
    expect(again.status).toBe(412);

    const unavailable = await call<GatewayView>('POST', '/v1/gateways/gamma/unavailable', { body: { reason: 'contract paused' }, token: tokens.operator });
    expect(unavailable.etag).toBe('"2"');
    const removed = await call<{ deleted: boolean; version: number }>('DELETE', '/v1/gateways/gamma', { headers: { 'If-Match': '"2"' } });
    expect(removed).toMatchObject({ status: 200, body: { deleted: true, version: 3 } });
    expect((await getGateway('gamma')).status).toBe(404);
    await untilRouting(stack.baseUrl, (view) => !view.gateways.some((g) => g.gatewayId === 'gamma'));

    const trail = await untilAudit('gamma', (view) => view.entries.length === 3);
    expect(trail.entries.map(({ actor, action, version }) => ({ actor, action, version }))).toEqual([
      { actor: 'operator-ann', action: 'created', version: 1 },
      { actor: 'operator-ann', action: 'marked-unavailable', version: 2 },
      { actor: 'operator-ann', action: 'deleted', version: 3 },
    ]);
    expect(trail.entries[0]).toMatchObject({ before: null, after: gamma });
    expect(trail.entries[1]).toMatchObject({
      reason: 'contract paused',
      changedFields: ['available', 'unavailableReason'],
      before: { available: true },
      after: { available: false, unavailableReason: 'contract paused' },
    });
    expect(trail.entries[2]).toMatchObject({ before: { available: false }, after: null });

    const recreated = await call<GatewayView>('PUT', '/v1/gateways/gamma', { body: gammaBody });
    expect(recreated).toMatchObject({ status: 201, etag: '"4"' });
    expect((await call('DELETE', '/v1/gateways/gamma', { headers: { 'If-Match': '"4"' } })).status).toBe(200);
  });

  type Listing = { body: { gateways: Array<{ gatewayId: string; recentSuccess: unknown }> } };
  it('When the back office restarts, then it rebuilds the same view and audit trail from the topics', async () => {
    const gatewaysBefore = await call<Listing['body']>('GET', '/v1/gateways');
    const betaVersion = (await getGateway(BETA)).body.version;
    const trailBefore = await untilAudit(BETA, (view) => view.entries.at(-1)?.version === betaVersion);
    await backoffice.stop();
    await start();
    // Success rates are live (orchestrators keep reporting), so they are compared by presence: rebuilt from their topic too.
    const withoutRates = ({ body, ...rest }: Listing) => ({ ...rest, body: { ...body, gateways: body.gateways.map(({ recentSuccess: _live, ...gateway }) => gateway) } });
    const reported = ({ body }: Listing) => body.gateways.filter((gateway) => gateway.recentSuccess !== null).map((gateway) => gateway.gatewayId);
    const gatewaysAfter = await call<Listing['body']>('GET', '/v1/gateways');
    expect(withoutRates(gatewaysAfter)).toEqual(withoutRates(gatewaysBefore));
    expect(reported(gatewaysAfter)).toEqual(expect.arrayContaining(reported(gatewaysBefore)));
    expect((await call('GET', `/v1/gateways/${BETA}/audit`)).body).toEqual(trailBefore);
    // gamma was removed at version 5: the removal event carries it, and so does the audit trail.
    const { gatewayId: _id, ...gammaBody } = rule('gamma', { regions: ['APAC'] });
    expect((await call<GatewayView>('PUT', '/v1/gateways/gamma', { body: gammaBody })).etag).toBe('"6"');
  });
});
