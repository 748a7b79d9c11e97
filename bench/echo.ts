// The echo baseline: the floor that Kafka and kafkajs impose on this
// machine. A request is produced, a responder process consumes it and
// produces a reply, and the reply is consumed here: the same two produce and
// two consume hops as a payment's attempt request and result, and nothing
// else (no HTTP, no Redis, no schema, no logging). Flat out, a closed loop;
// at a rate phase's rate, an open loop.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { errorMessage } from '../runtime/errors';
import { startServiceProcess } from '../scripts/processes';
import { ensureTopics } from '../topics/create';
import { PAYMENT_PARTITIONS } from '../topics/names';
import type { Cleanup } from './cleanup';
import type { ProcessSummary, Sampler } from './sampler';
import { stopProcess, type BenchBroker } from './stack';
import { perSecond, summarizeLatencies, type LatencySummary } from './stats';

/** Partitions each side handles at once: the orchestrator's results consumer uses the same. */
export const ECHO_PARTITIONS_CONCURRENTLY = 6;
/** About the size of an attempt request as the orchestrator sends it, so the echo moves as many bytes. */
const ECHO_VALUE = Buffer.alloc(600, 'x');

export interface EchoOptions {
  broker: BenchBroker;
  /** Requests in flight, each sent as soon as the one before it was answered (closed loop). */
  concurrency: number;
  /**
   * Instead: an open loop that sends this many requests a second on schedule, whatever the answers, as the
   * benchmark's rate phase sends payments. Its latency is what a bare Kafka request and reply costs on this
   * machine at that rate, the floor under the payments' latency target.
   */
  perSecond?: number;
  warmupS: number;
  durationS: number;
  runDir: string;
  sampler: Sampler;
  cleanup: Cleanup;
}

export interface EchoResult {
  concurrency: number;
  /** Set for an open loop (`EchoOptions.perSecond`); `concurrency` is then not used. */
  perSecond?: number;
  warmupS: number;
  durationS: number;
  roundTrips: number;
  roundTripsPerSecond: number;
  latencyMs: LatencySummary;
  errors: Record<string, number>;
  processes: ProcessSummary[];
  machineBusyPercent: number;
}

export async function runEcho(options: EchoOptions): Promise<EchoResult> {
  const { broker, sampler, cleanup } = options;
  const prefix = `bench-echo-${randomUUID().slice(0, 8)}.`;
  const requestsTopic = `${prefix}requests`;
  const repliesTopic = `${prefix}replies`;
  const kafka = new Kafka({ clientId: 'bench-echo', brokers: broker.brokers.split(','), logLevel: logLevel.ERROR });
  const admin = kafka.admin();
  await admin.connect();
  const deleteTopics = cleanup.defer('echo topics', async () => {
    await admin.deleteTopics({ topics: [requestsTopic, repliesTopic] });
    await admin.disconnect();
  });
  await ensureTopics(admin, [requestsTopic, repliesTopic].map((topic) => ({ topic, numPartitions: PAYMENT_PARTITIONS })));

  const responder = await startServiceProcess(
    'bench/echo-responder.ts',
    { KAFKA_BROKERS: broker.brokers, ECHO_REQUESTS_TOPIC: requestsTopic, ECHO_REPLIES_TOPIC: repliesTopic },
    { logFile: path.join(options.runDir, 'echo-responder.log'), readyTimeoutMs: 90_000 },
  );
  const stopResponder = cleanup.defer('echo responder', () => stopProcess(responder));
  if (responder.child.pid !== undefined) sampler.watch({ name: 'echo-responder', pid: responder.child.pid });

  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const stopProducer = cleanup.defer('echo producer', () => producer.disconnect());
  /** Each request waiting for its reply: called with true by the reply, with false when the run ends. */
  const waiting = new Map<string, (replied: boolean) => void>();
  const consumer = kafka.consumer({ groupId: `${repliesTopic}.requester` });
  const joined = new Promise<void>((resolve) => {
    const remove = consumer.on(consumer.events.GROUP_JOIN, () => {
      remove();
      resolve();
    });
  });
  await consumer.connect();
  const stopConsumer = cleanup.defer('echo consumer', () => consumer.disconnect());
  await consumer.subscribe({ topic: repliesTopic, fromBeginning: true });
  await consumer.run({
    partitionsConsumedConcurrently: ECHO_PARTITIONS_CONCURRENTLY,
    eachMessage: async ({ message }) => {
      const id = message.key?.toString('utf8') ?? '';
      waiting.get(id)?.(true);
      waiting.delete(id);
    },
  });
  await joined;

  const startedMs = performance.now();
  const fromMs = startedMs + options.warmupS * 1000;
  const toMs = fromMs + options.durationS * 1000;
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  let roundTrips = 0;
  let running = true;

  /** One request and its reply; resolves when it is answered or the run ends. */
  const roundTrip = async () => {
    const id = randomUUID();
    const reply = new Promise<boolean>((resolve) => waiting.set(id, resolve));
    const sentAtMs = performance.now();
    try {
      await producer.send({ topic: requestsTopic, acks: -1, messages: [{ key: id, value: ECHO_VALUE }] });
    } catch (error) {
      waiting.delete(id);
      const kind = errorMessage(error);
      errors[kind] = (errors[kind] ?? 0) + 1;
      return;
    }
    const replied = await reply;
    const doneMs = performance.now();
    if (replied && doneMs >= fromMs && doneMs < toMs) {
      roundTrips++;
      if (sentAtMs >= fromMs) latencies.push(doneMs - sentAtMs);
    }
  };
  const closedLoop = async () => {
    while (running) await roundTrip();
  };
  const openLoop = async (rate: number) => {
    const sent = new Set<Promise<void>>();
    let scheduled = 0;
    while (running) {
      // Due by the clock, not by answers, as the payments of a rate phase are (load.ts).
      const due = Math.floor(((performance.now() - startedMs) / 1000) * rate);
      for (; scheduled < due; scheduled++) {
        const request = roundTrip().finally(() => sent.delete(request));
        sent.add(request);
      }
      await delay(1);
    }
    await Promise.all(sent);
  };
  const progress = setInterval(() => {
    const now = performance.now();
    const phase = now < fromMs ? 'warm-up' : 'measuring';
    process.stderr.write(
      `[echo${options.perSecond === undefined ? '' : ` ${options.perSecond}/s`}] ${((now - startedMs) / 1000).toFixed(0)}/${options.warmupS + options.durationS} s ${phase}  round trips ${roundTrips}  machine ${sampler.machineBusyPercent(now - 1_500, now).toFixed(0)}% busy\n`,
    );
  }, 1_000);
  try {
    const clients = options.perSecond === undefined ? Array.from({ length: options.concurrency }, closedLoop) : [openLoop(options.perSecond)];
    await delay(toMs - performance.now());
    running = false;
    for (const stopWaiting of waiting.values()) stopWaiting(false);
    waiting.clear();
    await Promise.all(clients);
  } finally {
    clearInterval(progress);
    await stopConsumer();
    await stopProducer();
    await stopResponder();
    await deleteTopics();
  }
  return {
    concurrency: options.concurrency,
    ...(options.perSecond === undefined ? {} : { perSecond: options.perSecond }),
    warmupS: options.warmupS,
    durationS: options.durationS,
    roundTrips,
    roundTripsPerSecond: perSecond(roundTrips, toMs - fromMs),
    latencyMs: summarizeLatencies(latencies),
    errors,
    processes: sampler.summaries(fromMs, toMs),
    machineBusyPercent: sampler.machineBusyPercent(fromMs, toMs),
  };
}
