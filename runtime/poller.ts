import type { Logger } from './logger';

/**
 * Runs `sweep` every `pollMs` (measured from the end of the previous sweep,
 * so sweeps never overlap) until stopped; a failed sweep is logged and the
 * next one runs as usual. Stopping waits for a sweep in progress.
 */
export function startPoller(name: string, pollMs: number, sweep: () => Promise<void>, logger: Logger): () => Promise<void> {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const loop = () => {
    if (stopped) return;
    running = sweep()
      .catch((error: unknown) => logger.error({ err: error, poller: name }, `${name} failed; retrying`))
      .finally(() => {
        if (!stopped) timer = setTimeout(loop, pollMs);
      });
  };
  loop();
  return async () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    await running;
  };
}
