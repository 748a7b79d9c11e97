import pino from 'pino';

export type Logger = pino.Logger;

/** JSON logs on stdout; every line names the service and instance. */
export function createLogger(service: string, level: string, instance?: string): Logger {
  return pino({
    level,
    base: { service, ...(instance ? { instance } : {}) },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
