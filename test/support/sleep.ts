import type { Sleep } from '../../gateways/sandbox';

/** A sleep the test ends by hand (`wake`), which ends by itself when its signal aborts. */
export function controlledSleep() {
  const calls: Array<{ ms: number; signal: AbortSignal; wake: () => void }> = [];
  const sleep: Sleep = (ms, signal) =>
    new Promise((resolve) => {
      if (signal.aborted) return resolve(false);
      signal.addEventListener('abort', () => resolve(false), { once: true });
      calls.push({ ms, signal, wake: () => resolve(true) });
    });
  return { sleep, calls };
}
