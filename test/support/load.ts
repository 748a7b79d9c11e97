import { randomUUID } from 'node:crypto';
import { deposit, postPayment } from './stack';

export interface LoadOptions {
  /** Where a request goes, asked before every try, so a test can take an instance away or add one back mid-load. */
  targets: () => readonly string[];
  perSecond: number;
  /** The body of payment number `index`; by default a deposit from an account of its own. */
  body?: (index: number) => Record<string, unknown>;
  /**
   * How long a client keeps retrying one payment, with the same
   * Idempotency-Key, after getting no answer (a killed instance) or a 503
   * (draining, gateways busy), as the API documentation asks clients to.
   */
  retryForMs?: number;
}

/** The last answer one payment got, after its client stopped retrying. */
export interface LoadAnswer {
  index: number;
  /** HTTP status, or 'no-answer' when the last try got no response at all. */
  status: number | 'no-answer';
  /** Epoch ms when the first try was sent. */
  sentAt: number;
  /** From the first try to the last answer, retries included. */
  elapsedMs: number;
  /** What each try before the last got: why the client tried again. */
  retriedOn: Array<number | 'no-answer'>;
  paymentId?: string;
  body?: unknown;
}

export interface SteadyLoad {
  /** Ids of the payments answered 202 so far, one per Idempotency-Key. */
  accepted: string[];
  /** Final answers so far, in the order they arrived. */
  answers: LoadAnswer[];
  /** Resolves once `count` payments have been accepted. */
  untilAccepted(count: number, timeoutMs?: number): Promise<void>;
  /** Stops sending new payments and waits for every payment's client to finish. */
  stop(): Promise<{ accepted: string[]; answers: LoadAnswer[] }>;
}

const RETRY_BACKOFF_MS = 100;
/** A request unanswered this long counts as no answer (as from a killed instance), so a load always stops. */
const REQUEST_TIMEOUT_MS = 15_000;

/**
 * A platform sending payments at a steady rate in the background while a
 * test injects a fault. Each payment is one client: it sends with its own
 * Idempotency-Key to the next target, and after no answer or a 503 it tries
 * again with the same key (on the next target), until `retryForMs` has passed.
 */
export function startSteadyLoad(options: LoadOptions): SteadyLoad {
  const { perSecond, retryForMs = 30_000 } = options;
  const bodyOf = options.body ?? ((index: number) => deposit({ accountId: `load-${index}` }));
  const accepted: string[] = [];
  const answers: LoadAnswer[] = [];
  const clients: Array<Promise<void>> = [];
  const waiters: Array<() => void> = [];
  let nextTarget = 0;
  let stopped = false;

  const pickTarget = () => {
    const targets = options.targets();
    return targets.length === 0 ? undefined : targets[nextTarget++ % targets.length];
  };

  async function client(index: number): Promise<void> {
    const key = randomUUID();
    const body = bodyOf(index);
    const sentAt = Date.now();
    const retriedOn: LoadAnswer['retriedOn'] = [];
    for (;;) {
      const target = pickTarget();
      const response = target ? await postPayment(target, body, { 'Idempotency-Key': key }, AbortSignal.timeout(REQUEST_TIMEOUT_MS)).catch(() => undefined) : undefined;
      const status = response?.status ?? 'no-answer';
      const retryable = status === 'no-answer' || status === 503;
      if (retryable && Date.now() - sentAt < retryForMs) {
        retriedOn.push(status);
        await new Promise((resolve) => setTimeout(resolve, RETRY_BACKOFF_MS));
        continue;
      }
      const paymentId = status === 202 ? String(response?.body.id) : undefined;
      answers.push({ index, status, sentAt, elapsedMs: Date.now() - sentAt, retriedOn, ...(paymentId ? { paymentId } : { body: response?.body }) });
      if (paymentId) {
        accepted.push(paymentId);
        for (const wake of waiters.splice(0)) wake();
      }
      return;
    }
  }

  const started = Date.now();
  const pace = (async () => {
    for (let index = 0; !stopped; index++) {
      clients.push(client(index));
      const due = started + ((index + 1) * 1000) / perSecond;
      if (due > Date.now()) await new Promise((resolve) => setTimeout(resolve, due - Date.now()));
    }
  })();

  return {
    accepted,
    answers,
    async untilAccepted(count, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (accepted.length < count) {
        if (Date.now() > deadline) throw new Error(`${accepted.length} of ${count} payments accepted after ${timeoutMs} ms; last answers ${JSON.stringify(answers.slice(-3))}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    },
    async stop() {
      stopped = true;
      await pace;
      await Promise.all(clients);
      return { accepted: [...accepted], answers: [...answers] };
    },
  };
}
