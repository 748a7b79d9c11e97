// The load generator: POST /v1/payments at a fixed arrival rate (open loop)
// or flat out (closed loop), over keep-alive connections, with completion
// and latency taken end to end from the tracker.
import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { Pool } from 'undici';
import { z } from 'zod';
import { errorMessage } from '../runtime/errors';
import type { PaymentBody } from './payments';
import type { Sampler } from './sampler';
import { perSecond, summarizeLatencies, type LatencySummary } from './stats';
import type { Tracker } from './tracker';

/**
 * - flat-out: a closed loop of `concurrency` clients; each sends a payment,
 *   waits for its terminal status event, then sends the next, so
 *   `concurrency` payments are in flight end to end at any time.
 * - rate: an open loop that sends `perSecond` payments on schedule whatever
 *   the answers do; a send that would need more than `maxConnections`
 *   requests open at once is not made and is counted as unsent.
 */
export type LoadShape = { kind: 'flat-out'; concurrency: number } | { kind: 'rate'; perSecond: number; maxConnections: number };

export interface LoadPlan {
  name: string;
  shape: LoadShape;
  warmupS: number;
  durationS: number;
  /** How long to wait after the last send for every accepted payment's terminal event. */
  drainTimeoutS: number;
  body: (index: number) => PaymentBody;
  /**
   * How long one payment's client keeps retrying with the same
   * Idempotency-Key after no answer or a 503 (0: never; every such answer is
   * an error). The failover benchmark uses it when it kills an instance.
   */
  retryForMs?: number;
  /**
   * What a client does with `503 overloaded`: like a real client, it waits
   * for the Retry-After (or a short backoff when there is none) and sends the
   * same payment again with the same Idempotency-Key, at most this many
   * times; 0: never. Either way the refusal is counted apart, not as an
   * error. Absent: a 503 overloaded is an error like any other answer (the
   * throughput benchmark), counted in `overloaded` too.
   */
  overloadRetries?: number;
}

export interface LoadDeps {
  /** Base URLs of the orchestrators to send to, asked before every try (an instance may be gone). */
  targets: () => readonly string[];
  token: string;
  tracker: Tracker;
  sampler: Sampler;
  /** Extra text for the progress line, e.g. what a failover scenario has done so far. */
  progressNote?: () => string;
}

export interface LoadResult {
  name: string;
  shape: LoadShape;
  warmupS: number;
  durationS: number;
  /** The measured window, in performance.now() time. */
  window: { fromMs: number; toMs: number };
  /** Sent inside the measured window. */
  sent: number;
  unsent: number;
  accepted: number;
  acceptedPerSecond: number;
  /** Terminal events read inside the measured window (warm-up payments finishing in it included). */
  completed: number;
  completedPerSecond: number;
  /** POST sent → terminal status event read, for payments sent in the window. */
  endToEndMs: LatencySummary;
  /** POST sent → 202 received. */
  acceptMs: LatencySummary;
  /** Answers other than 202 (after retries) and transport failures, by kind. */
  errors: Record<string, number>;
  errorCount: number;
  retries: number;
  /** `503 overloaded` answers, counted apart from errors (warm-up included). */
  overloaded: OverloadedAnswers;
  /** Payments that ended FAILURE, by reason. */
  failed: Record<string, number>;
  failedCount: number;
  /** Accepted (in the whole phase, warm-up included) but not terminal when the drain ended. */
  lost: number;
  lostExamples: string[];
  duplicateTerminals: number;
  conflictingTerminals: number;
  malformedEvents: number;
  drainMs: number;
}

export interface OverloadedAnswers {
  /** Every `503 overloaded` answer, retries included. */
  answers: number;
  /** POST sent → its 503 overloaded answer, for every such answer: how fast the excess was refused. */
  answerMs: LatencySummary;
  /** Payments that got at least one 503 overloaded and were accepted on a later try. */
  acceptedAfterRefusal: number;
  /** Payments whose client stopped at a 503 overloaded (no retries left, or none allowed). */
  refusedFinally: number;
  /** Retries made after a 503 overloaded. */
  retries: number;
}

const acceptedAnswer = z.object({ id: z.string().min(1) });
const errorAnswer = z.object({ error: z.object({ code: z.string() }) });
/** Pause of a flat-out client after an error, so a failing stack is not hammered in a tight loop. */
const ERROR_PAUSE_MS = 50;
const RETRY_PAUSE_MS = 100;
/** Backoff after a 503 overloaded without a usable Retry-After: 250 ms, doubling, at most 2 s. */
const OVERLOAD_BACKOFF_MS = 250;
const OVERLOAD_BACKOFF_CAP_MS = 2_000;

/** Seconds of a Retry-After header (the orchestrator sends delay-seconds), in ms; undefined when absent or not a number. */
const retryAfterMs = (header: string | string[] | undefined): number | undefined => {
  const seconds = Number(Array.isArray(header) ? header[0] : header);
  return header !== undefined && Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
};

/** An error answer's body as JSON, or as the text it is when it is not JSON (e.g. a proxy's page). */
const parseJsonOrText = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
};

const bump = (counts: Record<string, number>, key: string) => {
  counts[key] = (counts[key] ?? 0) + 1;
};

export async function runLoad(plan: LoadPlan, deps: LoadDeps): Promise<LoadResult> {
  const { tracker, sampler } = deps;
  const connections = plan.shape.kind === 'flat-out' ? plan.shape.concurrency : plan.shape.maxConnections;
  const pools = new Map<string, Pool>();
  const poolOf = (baseUrl: string) => {
    let pool = pools.get(baseUrl);
    if (!pool) {
      pool = new Pool(baseUrl, { connections, pipelining: 1, keepAliveTimeout: 30_000 });
      pools.set(baseUrl, pool);
    }
    return pool;
  };
  let nextTarget = 0;
  const pickTarget = () => {
    const targets = deps.targets();
    return targets.length === 0 ? undefined : targets[nextTarget++ % targets.length];
  };

  const startedMs = performance.now();
  const fromMs = startedMs + plan.warmupS * 1000;
  const toMs = fromMs + plan.durationS * 1000;
  const inWindow = (atMs: number) => atMs >= fromMs && atMs < toMs;
  const errors: Record<string, number> = {};
  let sent = 0;
  let unsent = 0;
  let retries = 0;
  const overloadedAnswerMs: number[] = [];
  let acceptedAfterRefusal = 0;
  let refusedFinally = 0;
  let overloadRetries = 0;
  let httpInFlight = 0;
  let index = 0;
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${deps.token}` };

  /** One payment's client: resolves with its id once answered 202, or undefined after an error. */
  async function sendPayment(): Promise<string | undefined> {
    const body = JSON.stringify(plan.body(index++));
    const key = randomUUID();
    const sentAtMs = performance.now();
    const measured = inWindow(sentAtMs);
    if (measured) sent++;
    const retryUntil = sentAtMs + (plan.retryForMs ?? 0);
    let refusals = 0;
    httpInFlight++;
    try {
      for (;;) {
        const target = pickTarget();
        let failure: string;
        let retryable: boolean;
        if (target === undefined) {
          failure = 'no orchestrator left';
          retryable = true;
        } else {
          try {
            const trySentAtMs = performance.now();
            const answer = await poolOf(target).request({ path: '/v1/payments', method: 'POST', headers: { ...headers, 'idempotency-key': key }, body, headersTimeout: 30_000, bodyTimeout: 30_000 });
            const text = await answer.body.text();
            if (answer.statusCode === 202) {
              const { id } = acceptedAnswer.parse(JSON.parse(text));
              tracker.accepted(id, sentAtMs, performance.now(), measured);
              if (refusals > 0) acceptedAfterRefusal++;
              return id;
            }
            const code = errorAnswer.safeParse(parseJsonOrText(text));
            const overloaded = answer.statusCode === 503 && code.success && code.data.error.code === 'overloaded';
            if (overloaded) overloadedAnswerMs.push(performance.now() - trySentAtMs);
            if (overloaded && plan.overloadRetries !== undefined) {
              // Refused at the door, nothing written: not an error, and retried only as a client would.
              if (refusals >= plan.overloadRetries) {
                refusedFinally++;
                return undefined;
              }
              const backoff = Math.min(OVERLOAD_BACKOFF_CAP_MS, OVERLOAD_BACKOFF_MS * 2 ** refusals);
              refusals++;
              overloadRetries++;
              // A little jitter, so refused clients do not all come back in the same millisecond.
              // A client waiting to retry holds no request open: it does not count against maxConnections.
              httpInFlight--;
              try {
                await delay((retryAfterMs(answer.headers['retry-after']) ?? backoff) * (1 + Math.random() * 0.2));
              } finally {
                httpInFlight++;
              }
              continue;
            }
            failure = `HTTP ${answer.statusCode}${code.success ? ` ${code.data.error.code}` : ''}`;
            retryable = answer.statusCode === 503;
          } catch (error) {
            failure = `no answer: ${errorMessage(error)}`;
            retryable = true;
          }
        }
        if (!retryable || performance.now() >= retryUntil) {
          bump(errors, failure);
          return undefined;
        }
        retries++;
        await delay(RETRY_PAUSE_MS);
      }
    } finally {
      httpInFlight--;
    }
  }

  let sending = true;
  const phaseOver = new AbortController();
  // Every flat-out client waits on it at once (each removes its listener when its payment ends).
  setMaxListeners(0, phaseOver.signal);
  const clients = new Set<Promise<unknown>>();
  const track = (client: Promise<unknown>) => {
    clients.add(client);
    void client.finally(() => clients.delete(client));
  };

  let generator: Promise<void>;
  if (plan.shape.kind === 'flat-out') {
    generator = Promise.all(
      Array.from({ length: plan.shape.concurrency }, async () => {
        while (sending) {
          const id = await sendPayment();
          if (id !== undefined) await tracker.untilTerminal(id, phaseOver.signal);
          else await delay(ERROR_PAUSE_MS);
        }
      }),
    ).then(() => undefined);
  } else {
    const { perSecond: rate, maxConnections } = plan.shape;
    generator = (async () => {
      let scheduled = 0;
      while (sending) {
        // Sends are due by the clock, not by answers: a slow stack gets the same arrivals.
        const due = Math.floor(((performance.now() - startedMs) / 1000) * rate);
        for (; scheduled < due; scheduled++) {
          if (httpInFlight < maxConnections * Math.max(1, deps.targets().length)) track(sendPayment());
          else if (inWindow(performance.now())) unsent++;
        }
        await delay(1);
      }
    })();
  }

  const progress = setInterval(() => {
    const now = performance.now();
    const phase = now < fromMs ? 'warm-up' : now < toMs ? 'measuring' : 'draining';
    const counts = tracker.counts();
    const recent = summarizeLatencies(tracker.takeRecentLatencies());
    const orchestrator = sampler.latest('orchestrator') ?? sampler.latest('orchestrator-1');
    const parts = [
      `[${plan.name}] ${((now - startedMs) / 1000).toFixed(0)}/${plan.warmupS + plan.durationS} s ${phase}`,
      `accepted ${counts.accepted}`,
      `terminal ${counts.terminal}`,
      `pending ${counts.accepted - counts.terminal}`,
      `errors ${Object.values(errors).reduce((sum, n) => sum + n, 0)}`,
      ...(overloadedAnswerMs.length > 0 ? [`503 overloaded ${overloadedAnswerMs.length}`] : []),
      ...(unsent > 0 ? [`unsent ${unsent}`] : []),
      `last 1 s: ${recent.count}/s p95 ${recent.p95} ms`,
      ...(orchestrator ? [`orchestrator ${orchestrator.cpuPercent.toFixed(0)}% ${orchestrator.rssMB.toFixed(0)} MB`] : []),
      `machine ${sampler.machineBusyPercent(now - 1_500, now).toFixed(0)}% busy`,
      ...(deps.progressNote ? [deps.progressNote()] : []),
    ];
    process.stderr.write(`${parts.join('  ')}\n`);
  }, 1_000);

  try {
    await delay(Math.max(0, toMs - performance.now()));
    sending = false;
    phaseOver.abort();
    await generator;
    await Promise.all([...clients]);
    const drainStartedMs = performance.now();
    await tracker.untilAllTerminal(plan.drainTimeoutS * 1000);
    const drainMs = performance.now() - drainStartedMs;

    const records = [...tracker.payments];
    const measured = records.filter(([, record]) => record.measured);
    const completed = records.filter(([, record]) => record.terminalAtMs !== undefined && inWindow(record.terminalAtMs)).length;
    const accepted = records.filter(([, record]) => inWindow(record.acceptedAtMs)).length;
    const failed: Record<string, number> = {};
    for (const [, record] of measured) if (record.status === 'FAILURE') bump(failed, record.reason ?? 'unknown');
    const lost = records.filter(([, record]) => record.status === undefined).map(([id]) => id);
    const counts = tracker.counts();
    const windowMs = toMs - fromMs;
    return {
      name: plan.name,
      shape: plan.shape,
      warmupS: plan.warmupS,
      durationS: plan.durationS,
      window: { fromMs, toMs },
      sent,
      unsent,
      accepted,
      acceptedPerSecond: perSecond(accepted, windowMs),
      completed,
      completedPerSecond: perSecond(completed, windowMs),
      endToEndMs: summarizeLatencies(measured.flatMap(([, r]) => (r.terminalAtMs === undefined ? [] : [r.terminalAtMs - r.sentAtMs]))),
      acceptMs: summarizeLatencies(measured.map(([, r]) => r.acceptedAtMs - r.sentAtMs)),
      errors,
      errorCount: Object.values(errors).reduce((sum, n) => sum + n, 0),
      retries,
      overloaded: { answers: overloadedAnswerMs.length, answerMs: summarizeLatencies(overloadedAnswerMs), acceptedAfterRefusal, refusedFinally, retries: overloadRetries },
      failed,
      failedCount: Object.values(failed).reduce((sum, n) => sum + n, 0),
      lost: lost.length,
      lostExamples: lost.slice(0, 10),
      duplicateTerminals: counts.duplicateTerminals,
      conflictingTerminals: counts.conflictingTerminals,
      malformedEvents: counts.malformedEvents,
      drainMs: Math.round(drainMs),
    };
  } finally {
    clearInterval(progress);
    await Promise.all([...pools.values()].map((pool) => pool.destroy()));
  }
}
