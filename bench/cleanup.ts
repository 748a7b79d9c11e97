// Whatever a benchmark starts (a broker, services, consumers, a temporary
// directory) is registered here as it starts, so that it is stopped on every
// way out: the normal end, an error, or Ctrl-C / SIGTERM part-way through.
import { errorMessage } from '../runtime/errors';

export interface Cleanup {
  /**
   * Registers a clean-up step. The function returned runs it now, once (a
   * second call, or the final sweep, awaits the same run), so a scenario can
   * stop its own services when it ends and a signal cannot stop them twice.
   */
  defer(name: string, step: () => Promise<void> | void): () => Promise<void>;
}

interface Step {
  name: string;
  step: () => Promise<void> | void;
  running?: Promise<void>;
}

function createCleanup() {
  const steps: Step[] = [];
  const run = (entry: Step) =>
    (entry.running ??= (async () => {
      try {
        await entry.step();
      } catch (error) {
        console.error(`clean-up of ${entry.name} failed: ${errorMessage(error)}`);
      } finally {
        steps.splice(steps.indexOf(entry), 1);
      }
    })());
  return {
    defer(name: string, step: () => Promise<void> | void) {
      const entry: Step = { name, step };
      steps.push(entry);
      return () => run(entry);
    },
    /** Runs every step still registered, the last registered first. */
    async runAll(): Promise<void> {
      while (steps.length > 0) await run(steps[steps.length - 1] as Step);
    },
  };
}

/**
 * Runs a benchmark's main function and exits: 0 when it succeeds, 1 when it
 * throws, 130 after SIGINT or SIGTERM; every registered step runs first.
 */
export function runBench(main: (cleanup: Cleanup) => Promise<void>): void {
  const cleanup = createCleanup();
  let stopping = false;
  const finish = async (code: number) => {
    await cleanup.runAll();
    process.exit(code);
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      // npm and tsx relay a terminal's Ctrl-C, so one keypress can arrive twice.
      if (stopping) return;
      stopping = true;
      console.error(`\n${signal}: stopping everything this benchmark started`);
      void finish(130);
    });
  }
  main(cleanup).then(
    () => finish(0),
    (error: unknown) => {
      console.error(`benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      void finish(1);
    },
  );
}
