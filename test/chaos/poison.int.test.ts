import { randomBytes, randomUUID } from 'node:crypto';
import { DEVELOPMENT_SIGNING_KEY, mintToken } from '../../runtime/auth';
import { topicSpecs } from '../../topics/names';
import { deadLetter, type DeadLetter } from '../../topics/schemas';
import { expectNothingLost, startChaosStack, type ChaosStack } from '../support/chaos';
import { collectTopic } from '../support/collect';
import { pollUntil } from '../support/poll';
import { rule, untilRouting } from '../support/stack';

const GATEWAYS = ['alpha', 'beta'];
const HUGE_BYTES = 900_000;

const envelope = (type: string) => ({ eventId: randomUUID(), type, occurredAt: new Date().toISOString(), schemaVersion: 1 });

/** What a broken producer might put on any topic, and the reason a consumer parks it with. */
const POISONS: Array<{ kind: string; reason: string; value: () => Buffer | string }> = [
  // The leading 0xff byte makes sure the random bytes are never valid JSON by chance.
  { kind: 'random-bytes', reason: 'not-json', value: () => Buffer.concat([Buffer.from([0xff]), randomBytes(512)]) },
  { kind: 'wrong-schema', reason: 'schema', value: () => JSON.stringify({ ...envelope('gateway.result'), paymentId: 42, outcome: 'maybe' }) },
  // Just under the broker's default 1 MB message limit.
  { kind: 'huge', reason: 'schema', value: () => JSON.stringify({ ...envelope('gateway.result'), padding: 'x'.repeat(HUGE_BYTES) }) },
];

/** A dead letter's consumer group without the topic prefix and the per-start id of a follower's group. */
const consumerName = (letter: DeadLetter, prefix: string) => letter.consumer.slice(prefix.length).replace(/-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, '');

const deadLettered = async (metricsUrl: string) =>
  [...(await (await fetch(metricsUrl)).text()).matchAll(/^kafka_messages_dead_lettered_total\{[^}]*\} (\d+)$/gm)].reduce((sum, match) => sum + Number(match[1]), 0);

/**
 * Poison on every topic a service consumes, while payments flow: each poison
 * message must be parked on the dead-letter topic by every consumer of its
 * topic, and counted, and each consumer must go on with the valid messages
 * after it (payments complete, a rule change made through the back office
 * reaches the orchestrator and the back office's own views).
 */
describe('chaos: poison messages on every consumed topic', () => {
  let stack: ChaosStack | undefined;
  afterAll(() => stack?.stop());

  test('When random bytes, wrong-schema and huge messages land on every consumed topic under load, then each is dead-lettered and counted by each consumer, and work goes on', async () => {
    stack = await startChaosStack({ rules: GATEWAYS.map((gatewayId) => rule(gatewayId)), backoffice: true });
    const { topics, kafka, env } = stack;
    const prefix = env.TOPIC_PREFIX ?? '';
    const [baseUrl = ''] = stack.baseUrls();
    const backofficeUrl = stack.backoffice?.baseUrl ?? '';

    // Who consumes what: a topic added to the contract must be added here, or the check below fails.
    const consumers: Record<string, string[]> = {
      [topics.gatewayResults]: ['orchestrator'],
      // The back office refuses and counts them too, but parks nothing of the rule topic: the orchestrators park each
      // refused control message once, through their Redis ledger (ADR 0016).
      [topics.rules]: ['orchestrator-rules'],
      [topics.gatewayHealth]: ['orchestrator-health', 'backoffice-health'],
      [topics.gatewayStats]: ['backoffice-stats'],
      [topics.audit]: ['backoffice-audit'],
      // Operators' review resolutions (ADR 0018): a poison message is parked by the orchestrators' group.
      [topics.reviews]: ['orchestrator-reviews'],
      ...Object.fromEntries(GATEWAYS.map((gatewayId) => [topics.gatewayRequests(gatewayId), [`gateway-${gatewayId}`]])),
    };
    // The status and attempt-event topics are read by the platform, and the dead-letter topic by people: no consumer here parses them.
    const consumed = topicSpecs(prefix, GATEWAYS)
      .map((spec) => spec.topic)
      .filter((topic) => topic !== topics.paymentStatus && topic !== topics.paymentAttempts && topic !== topics.deadLetter);
    expect(Object.keys(consumers).sort()).toEqual([...consumed].sort());

    const letters = await collectTopic(kafka, topics.deadLetter, deadLetter, { groupPrefix: `${prefix}dlq-`, label: 'dead letter' });
    const load = stack.startLoad({ perSecond: 20 });
    try {
      await load.untilAccepted(20);

      const producer = kafka.producer();
      await producer.connect();
      const poisoned: Array<{ topic: string; partition: number; offset: string; reason: string }> = [];
      for (const topic of consumed) {
        for (const poison of POISONS) {
          const [written] = await producer.send({ topic, messages: [{ key: `poison-${poison.kind}-${randomUUID()}`, value: poison.value() }] });
          poisoned.push({ topic, partition: written?.partition ?? -1, offset: written?.baseOffset ?? '', reason: poison.reason });
        }
      }
      await producer.disconnect();

      // Work after the poison: payments go on, and a rule change goes through the back office.
      await load.untilAccepted(load.accepted.length + 40);
      const token = await mintToken({ secret: DEVELOPMENT_SIGNING_KEY, issuer: 'payment-orchestrator' }, 'chaos-operator', ['rules:read', 'rules:write']);
      const authorization = `Bearer ${token}`;
      const current = await fetch(`${backofficeUrl}/v1/gateways/alpha`, { headers: { authorization } });
      const { rule: alpha } = (await current.json()) as { rule: Record<string, unknown> };
      const changed = await fetch(`${backofficeUrl}/v1/gateways/alpha`, {
        method: 'PUT',
        headers: { authorization, 'content-type': 'application/json', 'If-Match': current.headers.get('etag') ?? '' },
        body: JSON.stringify({ ...alpha, weight: 5 }),
      });
      expect(changed.status).toBe(200);
      await untilRouting(baseUrl, (view) => view.gateways.some((gateway) => gateway.gatewayId === 'alpha' && gateway.weight === 5));
      // The audit event is published after the rule event and applied by the back office's own follower: wait for it (bounded).
      const auditEntries = async () => ((await (await fetch(`${backofficeUrl}/v1/gateways/alpha/audit`, { headers: { authorization } })).json()) as { entries: unknown[] }).entries.length;
      const entries = await pollUntil(auditEntries, (count) => count > 0, 10_000, () => 'no audit entry for alpha within 10 s', 50);
      expect(entries).toBeGreaterThan(0);

      const missing = () =>
        poisoned.flatMap(({ topic, partition, offset, reason }) =>
          (consumers[topic] ?? [])
            .filter(
              (consumer) =>
                !letters.messages.some(
                  (letter) =>
                    letter.sourceTopic === topic && letter.partition === partition && letter.offset === offset && letter.reason === reason && consumerName(letter, prefix) === consumer,
                ),
            )
            .map((consumer) => `${consumer} on ${topic}@${partition}:${offset} (${reason})`),
        );
      await letters.untilFound(
        () => (missing().length === 0 ? true : undefined),
        30_000,
        () => `not dead-lettered: ${missing().join('; ')}`,
      );
      const huge = letters.messages.find((letter) => letter.valueBytes > HUGE_BYTES);
      // The letter keeps the size and the start of the value, not the whole of it.
      expect(Buffer.from(huge?.valueBase64 ?? '', 'base64').length).toBe(64 * 1024);

      // Counted by each service, as many as it parked.
      const parkedBy = (service: string) => letters.messages.filter((letter) => consumerName(letter, prefix).startsWith(service)).length;
      expect(await deadLettered(`${baseUrl}/metrics`)).toBe(parkedBy('orchestrator'));
      const ruleTopicPoisons = poisoned.filter((poison) => poison.topic === topics.rules).length;
      expect(await deadLettered(`${backofficeUrl}/metrics`)).toBe(parkedBy('backoffice') + ruleTopicPoisons);
      for (const [gatewayId, gateway] of stack.gateways) expect(await deadLettered(`http://127.0.0.1:${gateway.port}/metrics`)).toBe(parkedBy(`gateway-${gatewayId}`));
    } finally {
      await letters.stop();
    }
    const { accepted, answers } = await load.stop();
    expect(answers.filter((answer) => answer.status !== 202)).toEqual([]);
    await expectNothingLost(stack, accepted);
  }, 120_000);
});
