// Follows every payment a benchmark sends from its 202 to its terminal status
// event, read from the status topic as the platform reads it, so completion
// and latency are end to end.
import { randomUUID } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import type { z } from 'zod';
import { createOffsetCommits } from '../runtime/offset-commits';
import { paymentStatusChanged, type PaymentStatusChanged } from '../topics/schemas';

/**
 * Consumes a topic from its beginning in a group of its own (committing its
 * offsets once a second, by hand) and hands each message, parsed with its schema, to
 * `onMessage` with the time it was read.
 * A message that does not parse is counted, not fatal. Resolves once the
 * group has its partitions, so nothing published afterwards is missed.
 */
export async function watchTopic<S extends z.ZodType>(
  kafka: Kafka,
  topic: string,
  schema: S,
  onMessage: (message: z.infer<S>, readAtMs: number) => void,
): Promise<{ malformed: () => number; stop: () => Promise<void> }> {
  const consumer = kafka.consumer({ groupId: `${topic}.bench-watch-${randomUUID()}`, maxWaitTimeInMs: 100 });
  let malformed = 0;
  const joined = new Promise<void>((resolve) => {
    const remove = consumer.on(consumer.events.GROUP_JOIN, () => {
      remove();
      resolve();
    });
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  // Offsets are committed once a second, by hand: with autoCommit on, kafkajs commits after every fetched batch
  // whatever its autoCommitInterval (runner.js), and at 300/s that was 180 OffsetCommit requests a second from the
  // tracker alone (strace of its socket writes), load on the machine the benchmark measures. Not never: a rejoin
  // of the group would then read the whole topic again, and every terminal event it re-read would count as a
  // duplicate terminal; now it re-reads at most about a second of it (a second more after a refused commit, which is
  // therefore not reported). The same mechanism as the services' interval commits (runtime/offset-commits.ts).
  const read = createOffsetCommits((offsets) => consumer.commitOffsets(offsets), () => undefined);
  await consumer.run({
    partitionsConsumedConcurrently: 6,
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      const readAtMs = performance.now();
      read.note(topic, partition, String(BigInt(message.offset) + 1n));
      let json: unknown;
      try {
        json = JSON.parse(message.value?.toString('utf8') ?? '');
      } catch {
        malformed++;
        return;
      }
      const parsed = schema.safeParse(json);
      if (parsed.success) onMessage(parsed.data, readAtMs);
      else malformed++;
    },
  });
  const commits = setInterval(() => void read.commit(), 1_000);
  commits.unref();
  await joined;
  return {
    malformed: () => malformed,
    stop: () => {
      clearInterval(commits);
      return consumer.disconnect();
    },
  };
}

export interface PaymentRecord {
  /** performance.now() when its POST was first sent. */
  sentAtMs: number;
  acceptedAtMs: number;
  /** Sent inside the measured window (not during warm-up). */
  measured: boolean;
  terminalAtMs?: number;
  status?: 'SUCCESS' | 'FAILURE';
  reason?: string;
  gatewayId?: string;
}

type Terminal = Pick<PaymentRecord, 'terminalAtMs' | 'status' | 'reason' | 'gatewayId'>;

export interface Tracker {
  /** Every payment answered 202, by id. */
  payments: ReadonlyMap<string, PaymentRecord>;
  accepted(paymentId: string, sentAtMs: number, acceptedAtMs: number, measured: boolean): void;
  /** Resolves when the payment's terminal event has been read, or when `giveUp` fires. */
  untilTerminal(paymentId: string, giveUp: AbortSignal): Promise<void>;
  /** Resolves when every accepted payment is terminal, or after `timeoutMs`. */
  untilAllTerminal(timeoutMs: number): Promise<void>;
  /** End-to-end latencies of payments that became terminal since the last call (for the progress line). */
  takeRecentLatencies(): number[];
  counts(): { accepted: number; terminal: number; duplicateTerminals: number; conflictingTerminals: number; malformedEvents: number };
  stop(): Promise<void>;
}

/** Starts reading the status topic; resolves once the reader is live. */
export async function startTracker(kafka: Kafka, statusTopic: string): Promise<Tracker> {
  const payments = new Map<string, PaymentRecord>();
  // A terminal event can be read before its 202 arrives (the answer and the events race): kept until it does.
  const earlyTerminals = new Map<string, Terminal>();
  const waiters = new Map<string, () => void>();
  let allTerminalWaiter: (() => void) | undefined;
  let terminal = 0;
  let duplicateTerminals = 0;
  let conflictingTerminals = 0;
  let recent: number[] = [];

  const settle = (paymentId: string, record: PaymentRecord, outcome: Terminal) => {
    Object.assign(record, outcome);
    terminal++;
    recent.push((outcome.terminalAtMs ?? 0) - record.sentAtMs);
    waiters.get(paymentId)?.();
    waiters.delete(paymentId);
    if (terminal === payments.size) allTerminalWaiter?.();
  };

  const onStatus = (event: PaymentStatusChanged, readAtMs: number) => {
    if (event.status === 'PENDING') return;
    const outcome: Terminal = { terminalAtMs: readAtMs, status: event.status, ...(event.reason ? { reason: event.reason } : {}), ...(event.gatewayId ? { gatewayId: event.gatewayId } : {}) };
    const record = payments.get(event.paymentId);
    const known = record?.status ?? earlyTerminals.get(event.paymentId)?.status;
    if (known !== undefined) {
      // Status events may be delivered twice; a second terminal status that differs breaks the core invariant.
      if (known === event.status) duplicateTerminals++;
      else conflictingTerminals++;
      return;
    }
    if (record) settle(event.paymentId, record, outcome);
    else earlyTerminals.set(event.paymentId, outcome);
  };
  const watch = await watchTopic(kafka, statusTopic, paymentStatusChanged, onStatus);

  return {
    payments,
    accepted(paymentId, sentAtMs, acceptedAtMs, measured) {
      if (payments.has(paymentId)) return;
      const record: PaymentRecord = { sentAtMs, acceptedAtMs, measured };
      payments.set(paymentId, record);
      const early = earlyTerminals.get(paymentId);
      if (early) {
        earlyTerminals.delete(paymentId);
        settle(paymentId, record, early);
      }
    },
    untilTerminal(paymentId, giveUp) {
      if (payments.get(paymentId)?.status !== undefined || giveUp.aborted) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const done = () => {
          giveUp.removeEventListener('abort', done);
          waiters.delete(paymentId);
          resolve();
        };
        waiters.set(paymentId, done);
        giveUp.addEventListener('abort', done, { once: true });
      });
    },
    untilAllTerminal(timeoutMs) {
      if (terminal === payments.size) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        allTerminalWaiter = () => {
          clearTimeout(timer);
          allTerminalWaiter = undefined;
          resolve();
        };
      });
    },
    takeRecentLatencies() {
      const taken = recent;
      recent = [];
      return taken;
    },
    counts: () => ({ accepted: payments.size, terminal, duplicateTerminals, conflictingTerminals, malformedEvents: watch.malformed() }),
    stop: watch.stop,
  };
}
