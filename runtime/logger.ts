import pino from 'pino';

/** pino's levels plus `critical` (between error and fatal) for events ops must see at once, like a breaker opening. */
export type Logger = pino.Logger<'critical'>;

/** JSON logs on stdout; every line names the service and instance. */
export function createLogger(service: string, level: string, instance?: string): Logger {
  return pino({
    level,
    customLevels: { critical: 55 },
    base: { service, ...(instance ? { instance } : {}) },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
