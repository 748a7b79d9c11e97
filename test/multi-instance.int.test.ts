import { startGateway, type RunningGateway } from '../gateways/main';
import { loadGatewayConfig } from '../gateways/config';
import { asService, isolatedNamespace, testLogger } from './support/env';
import { checkPaymentInvariants } from './support/invariants';
import { startServiceProcess, type ServiceProcess } from '../scripts/processes';
import { deposit, namespaceEnv, postPayment, prepareNamespace, rule, watchStatuses, type TestStack } from './support/stack';

/**
 * Two orchestrator processes against the same Kafka and Redis, with two
 * in-process sandbox gateways, under a steady stream of payments sent to
 * both instances in turn.
 */
async function twoInstances() {
  const ns = isolatedNamespace();
  const env = { ...namespaceEnv(ns), LOG_LEVEL: 'warn', TIMEOUT_POLL_MS: '50', OUTBOX_GRACE_MS: '500' };
  const rules = [rule('east', { timeoutMs: 1500 }), rule('west', { timeoutMs: 1500 })];
  const { kafka, topics } = await prepareNamespace(ns, rules);

  const gateways: RunningGateway[] = [];
  for (const { gatewayId } of rules) {
    gateways.push(
      await startGateway(loadGatewayConfig({ ...asService(env, 'gateway'), PORT: '0', GATEWAY_ID: gatewayId, SANDBOX_LATENCY_MS: '30' }), { logger: testLogger(gatewayId) }),
    );
  }
  const instances: ServiceProcess[] = await Promise.all(
    ['one', 'two'].map((instance) => startServiceProcess('orchestrator/main.ts', { ...asService(env, 'orchestrator'), INSTANCE_ID: instance })),
  );
  // watchStatuses and the invariant check only need the Kafka side of a stack.
  const view = { kafka, topics, env } as unknown as TestStack;
  const statuses = await watchStatuses(view);
  return {
    kafka,
    topics,
    env,
    instances,
    statuses,
    async stop() {
      await statuses.stop();
      for (const instance of instances) {
        if (instance.child.exitCode === null && instance.child.signalCode === null) {
          instance.child.kill('SIGTERM');
          await instance.exited;
        }
      }
      for (const gateway of gateways) await gateway.stop();
    },
  };
}

/** Sends `count` payments, about `perSecond` a second, alternating instances; `during(i)` runs before payment i. */
async function steadyLoad(instances: ServiceProcess[], count: number, perSecond: number, during: (index: number) => void): Promise<string[]> {
  const accepted: string[] = [];
  const pending: Array<Promise<void>> = [];
  const started = Date.now();
  for (let index = 0; index < count; index++) {
    during(index);
    const target = instances[index % instances.length];
    if (!target) continue;
    pending.push(
      postPayment(target.baseUrl, deposit({ accountId: `acc-${index}` })).then(
        (response) => {
          if (response.status === 202) accepted.push(String(response.body.id));
        },
        () => undefined, // a request to a killed instance fails; that payment was never accepted
      ),
    );
    const due = started + ((index + 1) * 1000) / perSecond;
    if (due > Date.now()) await new Promise((resolve) => setTimeout(resolve, due - Date.now()));
  }
  await Promise.all(pending);
  return accepted;
}

describe('several orchestrator instances', () => {
  let run: Awaited<ReturnType<typeof twoInstances>> | undefined;
  afterEach(async () => {
    await run?.stop();
    run = undefined;
  });

  const expectInvariants = async (accepted: string[]) => {
    if (!run) throw new Error('no run');
    await run.statuses.untilTerminal(accepted, 45_000);
    const report = await checkPaymentInvariants({
      kafka: run.kafka,
      topics: run.topics,
      redisUrl: run.env.REDIS_URL,
      redisKeyPrefix: run.env.REDIS_KEY_PREFIX,
      acceptedIds: accepted,
    });
    expect(report.violations).toEqual([]);
    expect(report.terminal).toBe(accepted.length);
  };

  test('When one of two instances is SIGKILLed mid-load, then every accepted payment still reaches exactly one terminal state', async () => {
    run = await twoInstances();
    const [victim] = run.instances;
    const accepted = await steadyLoad(run.instances, 300, 100, (index) => {
      if (index === 120) victim?.child.kill('SIGKILL');
    });
    expect(await victim?.exited).toBe('SIGKILL');
    // 120 sent before the kill, then only every other request can be accepted (fewer if the kill lands mid-request).
    expect(accepted.length).toBeGreaterThan(150);
    await expectInvariants(accepted);
  });

  test('When an instance gets SIGTERM mid-load, then it drains and exits 0 and nothing it accepted is lost', async () => {
    run = await twoInstances();
    const [leaving] = run.instances;
    const accepted = await steadyLoad(run.instances, 200, 100, (index) => {
      if (index === 80) leaving?.child.kill('SIGTERM');
    });
    expect(await leaving?.exited).toBe(0);
    await expectInvariants(accepted);
  });
});
