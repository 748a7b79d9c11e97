import pino from 'pino';
import { loadBackofficeConfig } from '../backoffice/config';
import { startBackoffice, type RunningBackoffice } from '../backoffice/main';
import { loadOrchestratorConfig } from '../orchestrator/config';
import { startOrchestrator, type RunningOrchestrator } from '../orchestrator/main';
import { DEVELOPMENT_SIGNING_KEY, mintToken } from '../runtime/auth';
import type { Logger } from '../runtime/logger';
import { asService, testLogger } from './support/env';
import { pollUntil } from './support/poll';
import { rule, ruleChangedJson, signedRuleMessage, startTestStack, untilMetrics, untilRouting, type TestStack } from './support/stack';

interface Divergence {
  gatewayId: string;
  kind: string;
  audited: { version: number };
  topic: { state: string; version: number | null; refused?: string };
}
interface ErrorView {
  error: { code: string; message: string; field?: string };
}

/**
 * The back office compares the rule topic with its audit trail (issue 12): a
 * rule rolled back on the topic (a replayed older signed event, which
 * compaction would keep as the key's only value) or erased (a bare tombstone)
 * is found, alerted and listed; re-publishing the audited rule at a new
 * version makes the topic and every orchestrator converge.
 */
describe('rule topic against the audit trail', () => {
  let stack: TestStack;
  let backoffice: RunningBackoffice;
  let baseUrl: string;
  let later: RunningOrchestrator | undefined;
  const logs: Array<Record<string, unknown>> = [];
  const tokens = { operator: '', viewer: '' };

  beforeAll(async () => {
    stack = await startTestStack({ rules: [rule('alpha'), rule('beta'), rule('gamma')] });
    tokens.operator = await mintToken({ secret: DEVELOPMENT_SIGNING_KEY, issuer: 'payment-orchestrator' }, 'operator-ann', ['rules:read', 'rules:write']);
    tokens.viewer = await mintToken({ secret: DEVELOPMENT_SIGNING_KEY, issuer: 'payment-orchestrator' }, 'viewer-bob', ['rules:read']);
    // The back office's own log lines, to find its critical line.
    const logger = pino({ level: 'info', customLevels: { critical: 55 } }, { write: (line: string) => logs.push(JSON.parse(line) as Record<string, unknown>) }) as Logger;
    backoffice = await startBackoffice(loadBackofficeConfig({ ...asService(stack.env, 'backoffice'), RULES_RECONCILE_MS: '300' }), { logger });
    baseUrl = `http://127.0.0.1:${backoffice.port}`;
  }, 120_000);

  afterAll(async () => {
    await later?.stop();
    await backoffice?.stop();
    await stack?.stop();
  });

  const call = async <T = Record<string, unknown>>(method: string, path: string, body?: unknown, token = tokens.operator) => {
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: (await response.json()) as T };
  };
  const send = async (messages: Array<{ key: string; value: string | null; headers?: Record<string, string> }>) => {
    const producer = stack.kafka.producer();
    await producer.connect();
    try {
      await producer.send({ topic: stack.topics.rules, messages });
    } finally {
      await producer.disconnect();
    }
  };
  const divergences = async () => (await call<{ divergences: Divergence[] }>('GET', '/v1/gateways')).body.divergences;
  /** The offset of the last message on the (one-partition) rule topic: the rule book's version once it applied it. */
  const lastRuleOffset = async () => {
    const admin = stack.kafka.admin();
    await admin.connect();
    try {
      const [partition] = await admin.fetchTopicOffsets(stack.topics.rules);
      return `rules@${BigInt(partition?.high ?? '0') - 1n}`;
    } finally {
      await admin.disconnect();
    }
  };

  test('When a signed older rule is replayed and a bare tombstone erases another, then both are found (metric, critical log, the rules view), and re-publishing makes the topic and every orchestrator converge', async () => {
    // Audited changes: alpha marked unavailable (version 2), gamma's weight (version 2).
    expect((await call('POST', '/v1/gateways/alpha/unavailable', { reason: 'PSP maintenance' })).status).toBe(200);
    const gamma = await call<{ rule: Record<string, unknown> }>('GET', '/v1/gateways/gamma');
    const gammaPut = await fetch(`${baseUrl}/v1/gateways/gamma`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${tokens.operator}`, 'content-type': 'application/json', 'If-Match': '"1"' },
      body: JSON.stringify({ ...gamma.body.rule, weight: 4 }),
    });
    expect(gammaPut.status).toBe(200);
    await untilRouting(stack.baseUrl, (view) => view.gateways.some((g) => g.gatewayId === 'alpha' && !g.available) && view.gateways.some((g) => g.gatewayId === 'gamma' && g.weight === 4));
    expect(await divergences()).toEqual([]);

    // An older signed alpha (version 1, available) replayed, and a bare tombstone under gamma: the running instance
    // refuses both, but each is now its key's last message, all a reader would find once the topic is compacted.
    await send([signedRuleMessage('alpha', ruleChangedJson(rule('alpha'), 1, 'seed')), { key: 'gamma', value: null }]);

    const found = await pollUntil(divergences, (list) => list.length === 2, 10_000, (list) => `divergences: ${JSON.stringify(list)}`);
    expect(found).toEqual([
      expect.objectContaining({ gatewayId: 'alpha', kind: 'rolled-back', audited: expect.objectContaining({ version: 2 }), topic: expect.objectContaining({ state: 'rule', version: 1 }) }),
      expect.objectContaining({ gatewayId: 'gamma', kind: 'missing', audited: expect.objectContaining({ version: 2 }), topic: expect.objectContaining({ state: 'none', version: null, refused: 'bad-signature' }) }),
    ]);
    const alphaView = await call<{ divergence?: Divergence }>('GET', '/v1/gateways/alpha');
    expect(alphaView.body.divergence).toMatchObject({ kind: 'rolled-back' });
    await untilMetrics(baseUrl, /backoffice_rules_diverged\{gateway="alpha",kind="rolled-back"[^}]*\} 1/);
    await untilMetrics(baseUrl, /backoffice_rules_diverged\{gateway="gamma",kind="missing"[^}]*\} 1/);
    const critical = logs.filter((line) => line.level === 55 && line.msg === 'rule topic diverged from the audit trail: re-publish the audited rule (POST /v1/gateways/:id/republish)');
    expect(critical).toEqual([
      expect.objectContaining({ gatewayId: 'alpha', kind: 'rolled-back', auditedVersion: 2, topicVersion: 1 }),
      expect.objectContaining({ gatewayId: 'gamma', kind: 'missing', auditedVersion: 2, topicVersion: null }),
    ]);
    // The running orchestrator never took the replay.
    await untilRouting(stack.baseUrl, (view) => view.gateways.some((g) => g.gatewayId === 'alpha' && !g.available));

    const alpha = await call<{ version: number; divergence: unknown; resolved: Divergence }>('POST', '/v1/gateways/alpha/republish', { note: 'incident 42' });
    expect(alpha).toMatchObject({ status: 200, body: { version: 3, divergence: null, resolved: { kind: 'rolled-back' } } });
    const alphaOffset = await lastRuleOffset();
    const republishedGamma = await call<{ version: number }>('POST', '/v1/gateways/gamma/republish', {});
    expect(republishedGamma).toMatchObject({ status: 200, body: { version: 3, divergence: null } });
    const gammaOffset = await lastRuleOffset();
    expect(gammaOffset).not.toBe(alphaOffset);

    // The running orchestrator applies both new versions (its rule book's version is the last offset it applied).
    const converged = (view: { rulesVersion: string; gateways: Array<{ gatewayId: string; available: boolean; weight: number }> }) =>
      view.rulesVersion === gammaOffset && view.gateways.some((g) => g.gatewayId === 'alpha' && !g.available) && view.gateways.some((g) => g.gatewayId === 'gamma' && g.weight === 4);
    await untilRouting(stack.baseUrl, converged);
    // So does one started now, from the topic alone.
    later = await startOrchestrator(loadOrchestratorConfig({ ...stack.env, PORT: '0' }), { logger: testLogger('orchestrator-later') });
    await untilRouting(`http://127.0.0.1:${later.port}`, converged);

    expect(await divergences()).toEqual([]);
    const metrics = await (await fetch(`${baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/backoffice_rules_reconciliations_total\{result="converged"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/backoffice_rules_diverged\{gateway="alpha",kind="rolled-back"[^}]*\} 0/);
    expect(metrics).not.toMatch(/backoffice_rules_diverged\{[^}]*\} 1/);
    const trail = await call<{ entries: Array<{ action: string; version: number; actor: string; reason?: string }> }>('GET', '/v1/gateways/alpha/audit');
    const entries = await pollUntil(
      async () => (await call<{ entries: Array<{ action: string; version: number; actor: string; reason?: string }> }>('GET', '/v1/gateways/alpha/audit')).body.entries,
      (list) => list.some((entry) => entry.action === 'republished'),
      10_000,
      () => `no republished entry: ${JSON.stringify(trail.body)}`,
    );
    expect(entries.at(-1)).toMatchObject({
      action: 'republished',
      version: 3,
      actor: 'operator-ann',
      reason: 'republished after divergence (rolled-back: topic version 1, audited version 2): incident 42',
    });
  }, 90_000);

  test('When a re-publication is refused, then the answer names the field in the error shape', async () => {
    const unknown = await call<ErrorView>('POST', '/v1/gateways/zeta/republish', {});
    expect(unknown).toMatchObject({ status: 404, body: { error: { code: 'not_found', field: 'id' } } });
    const neverAudited = await call<ErrorView>('POST', '/v1/gateways/beta/republish', {});
    expect(neverAudited).toMatchObject({ status: 404, body: { error: { code: 'not_found', field: 'id' } } });
    const agrees = await call<ErrorView>('POST', '/v1/gateways/alpha/republish', {});
    expect(agrees).toMatchObject({ status: 409, body: { error: { code: 'not_diverged', field: 'id' } } });
    const viewer = await call<ErrorView>('POST', '/v1/gateways/alpha/republish', {}, tokens.viewer);
    expect(viewer).toMatchObject({ status: 403, body: { error: { code: 'forbidden', field: 'Authorization' } } });
    const badNote = await call<ErrorView>('POST', '/v1/gateways/alpha/republish', { note: 7 });
    expect(badNote).toMatchObject({ status: 400, body: { error: { code: 'invalid_request', field: 'note' } } });
    const badId = await call<ErrorView>('POST', '/v1/gateways/Not%20An%20Id/republish', {});
    expect(badId).toMatchObject({ status: 400, body: { error: { code: 'invalid_request', field: 'id' } } });
  });
});
