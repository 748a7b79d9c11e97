import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import pino from 'pino';
import type { Logger } from '../../runtime/logger';
import type { Payment } from '../state/payment';
import type { PaymentStore, StoredPayment } from '../state/store';
import { createTerminalWaits } from './terminal-waits';

/** A subscriber connection whose SUBSCRIBE answers as each test says, recording what it was asked. */
function fakeSubscriber(answer: (channel: string, call: number) => Promise<unknown>) {
  const emitter = new EventEmitter();
  const calls: string[] = [];
  let subscribes = 0;
  const subscriber = Object.assign(emitter, {
    subscribe: (channel: string) => {
      calls.push(`subscribe ${channel}`);
      return answer(channel, ++subscribes);
    },
    unsubscribe: (channel: string) => {
      calls.push(`unsubscribe ${channel}`);
      return Promise.resolve(0);
    },
  });
  return { subscriber: subscriber as unknown as Redis, calls, publish: (channel: string) => emitter.emit('message', channel, 'p-1') };
}

function fakeStore(statuses: Array<Payment['status']>) {
  let reads = 0;
  const store = {
    terminalChannelOf: (paymentId: string) => `terminal:${paymentId}`,
    get: async (paymentId: string): Promise<StoredPayment> => {
      const status = statuses[Math.min(reads++, statuses.length - 1)]!;
      return { payment: { id: paymentId, status } as Payment, revision: String(reads) };
    },
  };
  return store as unknown as PaymentStore;
}

const logger = pino({ level: 'silent', customLevels: { critical: 55 } }) as unknown as Logger;

describe('terminal waits', () => {
  test('When the terminal message arrives, then the wait ends at once, and waits on one payment share one SUBSCRIBE that the last one ends', async () => {
    const { subscriber, calls, publish } = fakeSubscriber(() => Promise.resolve(1));
    const waits = createTerminalWaits(subscriber, fakeStore(['PENDING', 'PENDING', 'SUCCESS']), logger);
    const started = Date.now();
    const first = waits.waitForTerminal('p-1', 10_000);
    const second = waits.waitForTerminal('p-1', 10_000);
    await new Promise((resolve) => setImmediate(resolve));
    publish('terminal:p-1');
    const [a, b] = await Promise.all([first, second]);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect([a?.status, b?.status]).toContain('SUCCESS');
    expect(calls).toEqual(['subscribe terminal:p-1', 'unsubscribe terminal:p-1']);
  });

  test('When the subscriber connection is down (its SUBSCRIBE held), then the wait still ends at its limit with the payment as read', async () => {
    const { subscriber } = fakeSubscriber(() => new Promise(() => undefined));
    const waits = createTerminalWaits(subscriber, fakeStore(['PENDING']), logger);
    const started = Date.now();
    const payment = await waits.waitForTerminal('p-1', 200);
    expect(payment?.status).toBe('PENDING');
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  test('When a SUBSCRIBE fails, then that wait runs to its end, and the next wait on the payment subscribes again and is woken', async () => {
    const { subscriber, calls, publish } = fakeSubscriber((_channel, call) => (call === 1 ? Promise.reject(new Error('connection lost')) : Promise.resolve(1)));
    const waits = createTerminalWaits(subscriber, fakeStore(['PENDING', 'PENDING', 'PENDING', 'SUCCESS']), logger);
    expect((await waits.waitForTerminal('p-1', 50))?.status).toBe('PENDING');
    const next = waits.waitForTerminal('p-1', 10_000);
    await new Promise((resolve) => setImmediate(resolve));
    publish('terminal:p-1');
    expect((await next)?.status).toBe('SUCCESS');
    expect(calls).toEqual(['subscribe terminal:p-1', 'subscribe terminal:p-1', 'unsubscribe terminal:p-1']);
  });
});
