// The patch npm ci applies to kafkajs 2.2.4 (patches/kafkajs+2.2.4.patch, docs/decisions/0020): a
// connection with nothing waiting keeps no timer. Without it every connection that had answered a
// request re-armed a timer each millisecond forever (kafkajs issues #1556 and #1704).
// eslint-disable-next-line @typescript-eslint/no-require-imports -- kafkajs' internal class has no types
const RequestQueue = require('kafkajs/src/network/requestQueue') as new (options: object) => {
  checkPendingRequests(): void;
  push(request: object): void;
  maybeThrottle(ms: number): void;
  fulfillRequest(response: { correlationId: number; payload: Buffer; size: number }): void;
  destroy(): void;
};

const silent = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const queueOf = () => new RequestQueue({ maxInFlightRequests: 1, requestTimeout: 30_000, enforceRequestTimeout: false, clientId: 'test', broker: 'b1', logger: silent });
const request = (correlationId: number, sendRequest: () => void) => ({
  entry: { correlationId, apiKey: 0, apiName: 'Produce', apiVersion: 3, resolve: () => undefined, reject: () => undefined },
  expectResponse: true,
  sendRequest,
});

describe('kafkajs request queue, as patched', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  test('When nothing waits to be sent, then checking the queue leaves no timer behind', () => {
    const queue = queueOf();
    queue.checkPendingRequests();
    expect(jest.getTimerCount()).toBe(0);
  });

  test('When the only request in flight is answered, then the queue keeps no timer running', () => {
    const queue = queueOf();
    const sent = jest.fn();
    queue.push(request(1, sent));
    expect(sent).toHaveBeenCalledTimes(1);
    queue.fulfillRequest({ correlationId: 1, payload: Buffer.alloc(0), size: 0 });
    expect(jest.getTimerCount()).toBe(0);
  });

  test('When the broker throttles the client, then a request waiting behind it is still sent once the throttle ends', () => {
    const queue = queueOf();
    queue.maybeThrottle(50);
    const sent = jest.fn();
    queue.push(request(1, sent));
    expect(sent).not.toHaveBeenCalled();
    jest.advanceTimersByTime(49);
    expect(sent).not.toHaveBeenCalled();
    jest.advanceTimersByTime(11);
    expect(sent).toHaveBeenCalledTimes(1);
  });

  test('When a second request waits behind the one in flight, then it is sent as soon as the first is answered', () => {
    const queue = queueOf();
    const first = jest.fn();
    const second = jest.fn();
    queue.push(request(1, first));
    queue.push(request(2, second));
    expect(second).not.toHaveBeenCalled();
    queue.fulfillRequest({ correlationId: 1, payload: Buffer.alloc(0), size: 0 });
    expect(second).toHaveBeenCalledTimes(1);
  });
});
