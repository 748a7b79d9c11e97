import { deadLetter } from '../topics/schemas';
import { collectTopic } from './support/collect';
import { deposit, postPayment, rule, startTestStack, watchStatuses, type TestStack } from './support/stack';

describe('malformed messages on the result topic', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack({ rules: [rule('approver', { regions: ['EU'] })] });
  });
  afterAll(() => stack?.stop());

  test('When garbage and a wrong-schema result arrive, then both are dead-lettered and later payments still complete', async () => {
    const collected = await collectTopic(stack.kafka, stack.topics.deadLetter, deadLetter, { groupPrefix: `${stack.env.TOPIC_PREFIX}dlq-` });
    const letters = collected.messages;
    const statuses = await watchStatuses(stack);
    try {
      const producer = stack.kafka.producer();
      await producer.connect();
      await producer.send({
        topic: stack.topics.gatewayResults,
        messages: [
          { key: 'p1', value: Buffer.from([0xff, 0x00, 0x13, 0x37]) },
          { key: 'p2', value: JSON.stringify({ type: 'gateway.result', paymentId: 'p2', outcome: 'maybe' }) },
        ],
      });
      await producer.disconnect();

      const accepted = await postPayment(stack.baseUrl, deposit());
      const [terminal] = await statuses.untilTerminal([String(accepted.body.id)]);
      expect(terminal?.status).toBe('SUCCESS');

      // Bounded only by the test's own timeout (60 s).
      await collected.untilFound(() => (letters.length >= 2 ? true : undefined), 60_000, () => `${letters.length} of 2 dead letters`);
      expect(letters.map((letter) => [letter.key, letter.reason, letter.sourceTopic])).toEqual([
        ['p1', 'not-json', stack.topics.gatewayResults],
        ['p2', 'schema', stack.topics.gatewayResults],
      ]);
      expect(Buffer.from(letters[0]?.valueBase64 ?? '', 'base64')).toEqual(Buffer.from([0xff, 0x00, 0x13, 0x37]));
      const metrics = await (await fetch(`${stack.baseUrl}/metrics`)).text();
      expect(metrics).toMatch(/kafka_messages_dead_lettered_total\{topic="[^"]+gateway\.results",reason="not-json",service="orchestrator"\} 1/);
    } finally {
      await statuses.stop();
      await collected.stop();
    }
  });
});
