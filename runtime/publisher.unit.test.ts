import type { Kafka, ProducerBatch } from 'kafkajs';
import { Registry } from 'prom-client';
import { createPublisher, kafkaMetrics } from './kafka';

/** A producer whose requests the test answers by hand, so "in flight" is under the test's control. */
function fakeKafka() {
  const requests: Array<{ batch: ProducerBatch; answer: (error?: Error) => void }> = [];
  const producer = {
    connect: async () => undefined,
    sendBatch: (batch: ProducerBatch) =>
      new Promise((resolve, reject) => {
        requests.push({ batch, answer: (error) => (error ? reject(error) : resolve([])) });
      }),
  };
  const kafka = { producer: () => producer } as unknown as Kafka;
  const keysOf = (index: number) => requests[index]!.batch.topicMessages!.flatMap((entry) => entry.messages.map((message) => `${entry.topic}/${String(message.key)}`));
  return { kafka, requests, keysOf };
}

const message = (key: string) => ({ key, value: { type: 'test' } });
const settled = (promise: Promise<void>) => promise.then(() => 'sent', () => 'failed');
/** Lets queued promise callbacks run. */
const tick = () => new Promise((resolve) => setImmediate(resolve));
/** Waits for a condition the publisher's own timer makes true. */
async function until(condition: () => boolean) {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 1));
}

describe('publisher', () => {
  test('When calls arrive while a request is in flight, then they go out together in the next request, in order', async () => {
    const { kafka, requests, keysOf } = fakeKafka();
    const publisher = await createPublisher(kafka, kafkaMetrics(new Registry()));

    const first = publisher.publish('t', [message('a')]);
    await tick();
    const second = publisher.publish('t', [message('b')]);
    const third = publisher.publishAll([{ topic: 'u', ...message('c') }, { topic: 't', ...message('d') }]);
    await tick();
    expect(requests).toHaveLength(1);
    expect(keysOf(0)).toEqual(['t/a']);

    requests[0]!.answer();
    await first;
    await tick();
    expect(requests).toHaveLength(2);
    expect(keysOf(1)).toEqual(['t/b', 't/d', 'u/c']);
    requests[1]!.answer();
    await expect(Promise.all([second, third])).resolves.toBeDefined();
  });

  test('When calls arrive in the same event-loop turn while idle, then they go out as one request', async () => {
    const { kafka, requests, keysOf } = fakeKafka();
    const publisher = await createPublisher(kafka, kafkaMetrics(new Registry()));

    const sent = [publisher.publish('t', [message('a')]), publisher.publish('t', [message('b')])];
    await tick();
    expect(requests).toHaveLength(1);
    expect(keysOf(0)).toEqual(['t/a', 't/b']);
    requests[0]!.answer();
    await Promise.all(sent);
  });

  test('When a shared request fails, then each call is retried alone and only the one that fails again is rejected', async () => {
    const { kafka, requests, keysOf } = fakeKafka();
    const publisher = await createPublisher(kafka, kafkaMetrics(new Registry()));

    const first = publisher.publish('t', [message('a')]);
    await tick();
    const good = settled(publisher.publish('t', [message('good')]));
    const bad = settled(publisher.publish('t', [message('bad')]));
    requests[0]!.answer();
    await first;
    await tick();
    requests[1]!.answer(new Error('message too large'));
    await tick();
    expect(keysOf(2)).toEqual(['t/good']);
    requests[2]!.answer();
    await tick();
    expect(keysOf(3)).toEqual(['t/bad']);
    requests[3]!.answer(new Error('message too large'));
    expect(await good).toBe('sent');
    expect(await bad).toBe('failed');
  });

  test('When a request fails with a retriable error, then the whole request is sent again, not only the part kafkajs reported', async () => {
    const { kafka, requests, keysOf } = fakeKafka();
    const publisher = await createPublisher(kafka, kafkaMetrics(new Registry()), { retryBackoffMs: 1 });

    // A request spanning two leaders; one died. kafkajs' own retry would skip the leader that answered (issue #1303).
    const sent = settled(publisher.publishAll([{ topic: 't', ...message('on-live-leader') }, { topic: 'u', ...message('on-dead-leader') }]));
    await tick();
    const leaderGone = Object.assign(new Error('This server is not the leader for that topic-partition'), { name: 'KafkaJSNumberOfRetriesExceeded' });
    requests[0]!.answer(leaderGone);
    await until(() => requests.length === 2);
    expect(keysOf(1)).toEqual(keysOf(0));
    requests[1]!.answer();
    expect(await sent).toBe('sent');
  });

  test('When a request fails with an error that cannot pass on a retry, then the call fails at once', async () => {
    const { kafka, requests } = fakeKafka();
    const publisher = await createPublisher(kafka, kafkaMetrics(new Registry()), { retryBackoffMs: 1 });

    const sent = settled(publisher.publish('t', [message('a')]));
    await tick();
    requests[0]!.answer(Object.assign(new Error('Not authorized to access topics'), { name: 'KafkaJSNonRetriableError' }));
    expect(await sent).toBe('failed');
    expect(requests).toHaveLength(1);
  });
});
