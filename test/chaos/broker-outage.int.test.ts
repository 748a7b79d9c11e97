import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as waitFor } from 'node:timers/promises';
import { startLocalKafka, stopLocalKafka, type LocalKafkaOptions } from '../../scripts/kafka-local';
import { freePort } from '../../scripts/processes';
import { expectNothingLost, startChaosStack, untilReady, type ChaosStack } from '../support/chaos';
import { fetchApi, kafkaSecurity } from '../support/env';
import { deposit, rule } from '../support/stack';

/** How long the broker stays down. */
const OUTAGE_MS = 10_000;

/**
 * The broker stops under steady load and comes back 10 s later. The test
 * owns its broker (free ports, its own data directory): the run's shared
 * broker is never stopped. What the API answers meanwhile is written in
 * docs/runbook.md ("Kafka is down"); these tests hold it to that.
 */
describe('chaos: the Kafka broker stops and starts again', () => {
  let kafkaOptions: LocalKafkaOptions;
  let brokers: string;
  let stack: ChaosStack | undefined;
  beforeAll(async () => {
    // Authenticated as the run's broker is, so the stack's services connect with their own principals.
    kafkaOptions = { port: await freePort(), controllerPort: await freePort(), dataDir: mkdtempSync(path.join(tmpdir(), 'pgo-chaos-kafka-')), quiet: true, security: kafkaSecurity() };
    brokers = (await startLocalKafka(kafkaOptions)).brokers;
  }, 120_000);
  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
  });
  afterAll(async () => {
    if (!kafkaOptions) return;
    await stopLocalKafka(kafkaOptions);
    if (kafkaOptions.dataDir) rmSync(kafkaOptions.dataDir, { recursive: true, force: true });
  });

  /** Stops the broker for OUTAGE_MS and starts it again; `meanwhile` runs in the middle of the outage. */
  async function brokerOutage<T>(meanwhile: () => Promise<T>) {
    await stopLocalKafka(kafkaOptions);
    const from = Date.now();
    try {
      await waitFor(OUTAGE_MS / 2);
      const observed = await meanwhile();
      await waitFor(from + OUTAGE_MS - Date.now());
      return { from, restarting: Date.now(), observed };
    } finally {
      // Even when `meanwhile` failed: the next test needs the broker.
      await startLocalKafka(kafkaOptions);
    }
  }

  test('When the broker is down for 10 s and gateway timeouts are longer, then every request is answered 202 at once, a repeated key gets the same payment, and nothing is lost', async () => {
    stack = await startChaosStack({
      brokers,
      rules: [rule('east', { timeoutMs: 60_000 }), rule('west', { timeoutMs: 60_000 })],
      sandboxes: { east: { latencyMs: 20 }, west: { latencyMs: 20 } },
    });
    const [baseUrl = ''] = stack.baseUrls();
    const load = stack.startLoad({ perSecond: 20, retryForMs: 60_000 });
    await load.untilAccepted(40);
    const outage = await brokerOutage(async () => {
      // A client that asks again with its Idempotency-Key (it missed the answer, say) gets the same stored payment.
      const key = randomUUID();
      const post = (timeoutMs: number) =>
        fetchApi(`${baseUrl}/v1/payments`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'Idempotency-Key': key },
          body: JSON.stringify(deposit({ accountId: 'impatient' })),
          signal: AbortSignal.timeout(timeoutMs),
        });
      const bodyOf = async (response: Response) => ({ status: response.status, body: (await response.json()) as { id: string; status: string } });
      const first = await bodyOf(await post(2_000));
      return { first, retried: await bodyOf(await post(2_000)) };
    });
    await load.untilAccepted(load.accepted.length + 40, 60_000);
    const { accepted, answers } = await load.stop();

    // Every request was answered 202 by the instance it went to: none refused, none retried.
    expect(answers.filter((answer) => answer.status !== 202 || answer.retriedOn.length > 0)).toEqual([]);
    const sentWhileDown = answers.filter((answer) => answer.sentAt >= outage.from && answer.sentAt < outage.restarting);
    expect(sentWhileDown.length).toBeGreaterThan(OUTAGE_MS / 100);
    // Stored, so answered: the answer does not wait for Kafka; the outbox is sent once the broker is back.
    expect(sentWhileDown.filter((answer) => answer.elapsedMs > 2_000)).toEqual([]);
    expect(outage.observed.first).toMatchObject({ status: 202, body: { status: 'PENDING' } });
    expect(outage.observed.retried).toEqual(outage.observed.first);
    // Usually 200 all along; 503 only while a consumer that kafkajs gave up on is being started again.
    await untilReady(baseUrl, 30_000);

    await expectNothingLost(stack, [...accepted, outage.observed.first.body.id], 90_000);
  }, 150_000);

  test('When the broker is down for 10 s and gateway timeouts are shorter, then every payment ends once and nothing is lost', async () => {
    stack = await startChaosStack({
      brokers,
      rules: [rule('east', { timeoutMs: 2_000 }), rule('west', { timeoutMs: 2_000 })],
      sandboxes: { east: { latencyMs: 20 }, west: { latencyMs: 20 } },
    });
    const [baseUrl = ''] = stack.baseUrls();
    const load = stack.startLoad({ perSecond: 20, retryForMs: 60_000 });
    await load.untilAccepted(40);
    await brokerOutage(async () => undefined);
    await load.untilAccepted(load.accepted.length + 40, 60_000);
    const { accepted, answers } = await load.stop();
    await untilReady(baseUrl, 30_000);

    // Deadlines wait while the brokers do not answer and for RESULTS_DISRUPTION_SETTLE_MS after (docs/decisions/0015).
    // A gateway worker that takes longer than that to see its requests again (kafkajs reconnects and rejoins its
    // group; 11 s alone, over 20 s on a loaded machine) is still read as silent: that gap is known and open (the
    // closing note of issue 11), so this test holds the invariants, not first-time success.
    expect(answers.filter((answer) => answer.status !== 202)).toEqual([]);
    await expectNothingLost(stack, accepted, 90_000);
  }, 150_000);
});
