/**
 * Reads every `intervalMs` until what it reads is `ready`, for states nothing
 * announces where a test could listen (a routing view, readiness, an audit
 * trail, a metric). After `timeoutMs` it fails with `failure(last read)`.
 */
export function pollUntil<T, R extends T>(read: () => Promise<T>, ready: (value: T) => value is R, timeoutMs: number, failure: (last: T) => string, intervalMs?: number): Promise<R>;
export function pollUntil<T>(read: () => Promise<T>, ready: (value: T) => boolean, timeoutMs: number, failure: (last: T) => string, intervalMs?: number): Promise<T>;
export async function pollUntil<T>(read: () => Promise<T>, ready: (value: T) => boolean, timeoutMs: number, failure: (last: T) => string, intervalMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ready(value)) return value;
    if (Date.now() > deadline) throw new Error(failure(value));
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
