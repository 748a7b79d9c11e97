import type { Logger } from './logger';
import { dropLogsIfStdoutWasSupervisors, onSupervisorGone } from './supervisor';

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
 * SIGTERM and SIGINT drain the service, and so does the loss of the
 * supervisor that started it (runtime/supervisor.ts: `npm start`, the test
 * and benchmark helpers), so an orphaned instance never stays in a consumer
 * group unseen. If draining takes longer than `graceMs` milliseconds the
 * process exits anyway, non-zero.
 */
export function exitOnSignals(service: { stop: () => Promise<void> }, logger: Logger, graceMs: number): void {
  let stopping = false;
  const shutDown = (reason: NodeJS.Signals | 'supervisor-gone') => {
    // A signal and the supervisor's loss can both arrive: drain once.
    if (stopping) return;
    stopping = true;
    if (reason === 'supervisor-gone') {
      logger.warn({ reason }, 'supervisor gone, shutting down');
      // Its stdout pipe has no reader now: logging into it would hang the exit (see the function).
      dropLogsIfStdoutWasSupervisors(logger);
    } else logger.info({ signal: reason }, 'shutting down');
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
  process.once('SIGTERM', shutDown);
  process.once('SIGINT', shutDown);
  if (onSupervisorGone(() => shutDown('supervisor-gone'))) {
    logger.info({ parentPid: process.ppid }, 'supervised: drains and exits if its supervisor goes away');
  }
}

/** Runs a service's start function, logging a start-up failure before exiting. */
export function runMain(start: () => Promise<unknown>): void {
  start().catch((error: unknown) => {
    // The logger may not exist yet (bad config), so this goes to stderr directly.
    process.stderr.write(`start-up failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
