import type { Kafka } from 'kafkajs';
import { loadBackofficeConfig } from '../backoffice/config';
import { startBackoffice, type RunningBackoffice } from '../backoffice/main';
import { DEVELOPMENT_SIGNING_KEY, mintToken } from '../runtime/auth';
import { auditEntry, ruleEvent } from '../topics/schemas';
import { collectTopic, type MessageSchema } from './support/collect';
import { asService, testLogger } from './support/env';
import { pollUntil } from './support/poll';
import { rule, startTestStack, untilRouting, type TestStack } from './support/stack';

const ALPHA = 'alpha';

/**
 * A rule change and its audit entry leave through one outbox in Redis
 * (ADR 0018): a publish that fails between them, or a process that dies
 * there, leaves the rest stored, and the relay of this or the next back
 * office sends it. Nothing is lost and nothing is sent twice.
 */
describe('back-office outbox', () => {
  let stack: TestStack;
  let token: string;
  const running: RunningBackoffice[] = [];
  /** Topics whose publish fails while listed: a broker that refuses, or the crash point of a write. */
  const failing = new Set<string>();

  beforeAll(async () => {
    stack = await startTestStack({ rules: [rule(ALPHA), rule('beta')] });
    token = await mintToken({ secret: DEVELOPMENT_SIGNING_KEY, issuer: 'payment-orchestrator' }, 'operator-ann', ['rules:read', 'rules:write']);
  }, 120_000);

  afterAll(async () => {
    for (const backoffice of running) await backoffice.stop();
    await stack?.stop();
  });

  async function startOne(): Promise<string> {
    const env = { ...asService(stack.env, 'backoffice'), OUTBOX_GRACE_MS: '300', OUTBOX_POLL_MS: '100' };
    const backoffice = await startBackoffice(loadBackofficeConfig(env), {
      logger: testLogger('backoffice'),
      beforeSend: (topic) => {
        if (failing.has(topic)) throw new Error(`simulated: the publish to ${topic} never happened`);
      },
    });
    running.push(backoffice);
    return `http://127.0.0.1:${backoffice.port}`;
  }

  const call = async (baseUrl: string, method: string, path: string, body?: unknown) => {
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  const auditOf = async (baseUrl: string, gatewayId: string) =>
    ((await call(baseUrl, 'GET', `/v1/gateways/${gatewayId}/audit`)).body as { entries: Array<{ action: string; version: number; reason?: string }> }).entries;

  async function topicMessages<T>(kafka: Kafka, topic: string, schema: MessageSchema<T>): Promise<T[]> {
    const collected = await collectTopic(kafka, topic, schema, { groupPrefix: `${stack.env.TOPIC_PREFIX}outbox-test-` });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await collected.stop();
    return collected.messages;
  }

  test('When the process dies after the rule event was published and before its audit entry, then the next back office publishes the audit entry, once', async () => {
    const first = await startOne();
    failing.add(stack.topics.audit);
    const changed = await call(first, 'POST', `/v1/gateways/${ALPHA}/unavailable`, { reason: 'PSP maintenance' });
    expect(changed.status).toBe(200);
    await untilRouting(stack.baseUrl, (view) => view.gateways.some((gateway) => gateway.gatewayId === ALPHA && !gateway.available));
    expect(await auditOf(first, ALPHA)).toEqual([]);

    // The crash: this back office is gone with the audit entry still in Redis; the next one starts healthy.
    await running.pop()?.stop();
    failing.clear();
    const second = await startOne();

    const entries = await pollUntil(() => auditOf(second, ALPHA), (found) => found.length > 0, 10_000, (found) => `no audit entry: ${JSON.stringify(found)}`);
    expect(entries).toEqual([expect.objectContaining({ action: 'marked-unavailable', version: 2, reason: 'PSP maintenance' })]);
    const audits = (await topicMessages(stack.kafka, stack.topics.audit, auditEntry)).filter((entry) => entry.type === 'rule.audited' && entry.gatewayId === ALPHA);
    expect(audits).toHaveLength(1);
    const rules = (await topicMessages(stack.kafka, stack.topics.rules, ruleEvent)).filter((event) => event.version === 2 && event.type === 'rule.changed' && event.rule.gatewayId === ALPHA);
    expect(rules).toHaveLength(1);
  }, 60_000);

  test('When Kafka refuses the rule event itself, then the change is answered 503 not_published, and the relay publishes the rule and its audit entry together once Kafka takes them', async () => {
    const baseUrl = running.at(-1) ? `http://127.0.0.1:${running.at(-1)?.port}` : await startOne();
    failing.add(stack.topics.rules);
    const refused = await call(baseUrl, 'POST', '/v1/gateways/beta/unavailable', { reason: 'PSP outage' });
    expect(refused).toMatchObject({ status: 503, body: { error: { code: 'not_published' } } });
    expect(await auditOf(baseUrl, 'beta')).toEqual([]);

    failing.clear();
    await untilRouting(stack.baseUrl, (view) => view.gateways.some((gateway) => gateway.gatewayId === 'beta' && !gateway.available));
    const entries = await pollUntil(() => auditOf(baseUrl, 'beta'), (found) => found.length > 0, 10_000, (found) => `no audit entry: ${JSON.stringify(found)}`);
    expect(entries).toEqual([expect.objectContaining({ action: 'marked-unavailable', version: 2, reason: 'PSP outage' })]);
    const metrics = await (await fetch(`${baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/backoffice_rule_changes_total/);
  }, 60_000);
});
