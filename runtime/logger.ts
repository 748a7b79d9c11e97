import pino from 'pino';
import { isoTime } from './iso-time';

/** pino's levels plus `critical` (between error and fatal) for events ops must see at once, like a breaker opening. */
export type Logger = pino.Logger<'critical'>;

/** Longest a log line waits in the buffer: a quiet service's critical line still shows within this. */
const FLUSH_EVERY_MS = 200;

let stdout: pino.DestinationStream | undefined;

/**
 * One buffered stdout for the whole process. Under load a service writes
 * several lines per payment; a write per line was a visible share of the CPU
 * profile, so lines are gathered into writes of about 4 KB, flushed at least
 * every FLUSH_EVERY_MS and synchronously on exit (process.exit included), so
 * nothing logged before an exit is lost.
 */
function sharedStdout(): pino.DestinationStream {
  if (stdout) return stdout;
  const destination = pino.destination({ dest: 1, sync: false, minLength: 4096 });
  setInterval(() => destination.flush(), FLUSH_EVERY_MS).unref();
  process.on('exit', () => {
    try {
      destination.flushSync();
    } catch {
      // An asynchronous write still in progress at exit cannot be waited for; the process is ending either way.
    }
  });
  stdout = destination;
  return destination;
}

/** pino's `isoTime` field, written by runtime/iso-time.ts: the builtin toISOString costs about 450 ns a line. */
const lineTime = () => `,"time":"${isoTime(Date.now())}"`;

/** JSON logs on stdout; every line names the service and instance, and its time in ISO 8601 UTC. */
export function createLogger(service: string, level: string, instance?: string): Logger {
  return pino(
    {
      level,
      customLevels: { critical: 55 },
      base: { service, ...(instance ? { instance } : {}) },
      timestamp: lineTime,
    },
    sharedStdout(),
  );
}
