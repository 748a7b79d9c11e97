import type { Logger } from './logger';

type Disposer = () => Promise<void> | void;

/** What every service's start function returns: where it listens, and how to drain and stop it. */
export interface RunningService {
  port: number;
  stop: () => Promise<void>;
}

/**
 * Start-up and shutdown in one place: every resource registers a disposer as
 * it starts, and shutdown runs them in reverse order, so a consumer stops
 * before the producer it publishes with, and Redis closes last.
 */
export class Lifecycle {
  private readonly disposers: Array<{ name: string; dispose: Disposer }> = [];
  private stopping: Promise<void> | undefined;

  constructor(private readonly logger: Logger) {}

  get isStopping(): boolean {
    return this.stopping !== undefined;
  }

  add(name: string, dispose: Disposer): void {
    this.disposers.push({ name, dispose });
  }

  stop(): Promise<void> {
    this.stopping ??= this.runDisposers();
    return this.stopping;
  }

  private async runDisposers(): Promise<void> {
    for (const { name, dispose } of [...this.disposers].reverse()) {
      try {
        await dispose();
        this.logger.debug({ resource: name }, 'stopped');
      } catch (error) {
        this.logger.error({ err: error, resource: name }, 'failed to stop cleanly');
      }
    }
  }
}

/**
 * SIGTERM and SIGINT drain the service; if draining takes longer than the
 * grace period the process exits anyway, non-zero.
 */
export function exitOnSignals(service: { stop: () => Promise<void> }, logger: Logger, graceMs: number): void {
  const onSignal = (signal: NodeJS.Signals) => {
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      logger.error({ graceMs }, 'shutdown took too long, exiting');
      process.exit(1);
    }, graceMs);
    force.unref();
    void service.stop().then(() => {
      logger.info('stopped');
      process.exit(0);
    });
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}

/** Runs a service's start function, logging a start-up failure before exiting. */
export function runMain(start: () => Promise<unknown>): void {
  start().catch((error: unknown) => {
    // The logger may not exist yet (bad config), so this goes to stderr directly.
    process.stderr.write(`start-up failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
