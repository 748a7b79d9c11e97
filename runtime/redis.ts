import Redis from 'ioredis';
import { Histogram, type Registry } from 'prom-client';
import type { Logger } from './logger';

export type { Redis };

/** A Redis connection whose keys all carry the given prefix; with a registry, its command latency is measured. */
export function createRedis(url: string, keyPrefix: string, logger: Logger, registry?: Registry): Redis {
  const redis = new Redis(url, {
    keyPrefix,
    lazyConnect: true,
    // Commands wait for a reconnect instead of failing at once: a Redis restart
    // delays work, it does not drop it.
    maxRetriesPerRequest: null,
    retryStrategy: (attempt) => Math.min(attempt * 100, 2000),
    // Commands issued in the same tick (many payments at once) leave in one socket write, not one write each:
    // the profile showed per-command writes as the orchestrator's largest single cost under load.
    enableAutoPipelining: true,
  });
  redis.on('error', (error) => logger.warn({ err: error }, 'redis connection error'));
  if (registry) measureCommands(redis, registry);
  return redis;
}

type SendCommand = Redis['sendCommand'];
type Command = Parameters<SendCommand>[0];

/**
 * Times every command from the moment it is handed to the connection until
 * its reply (or error): what a caller waits, including time queued while
 * Redis reconnects. Pipelined and MULTI commands pass here one by one; a Lua
 * script is `evalsha`. The command name is the only label, so the set stays bounded.
 */
function measureCommands(redis: Redis, registry: Registry): void {
  const duration = new Histogram({
    name: 'redis_command_duration_seconds',
    help: 'Redis command latency as the service sees it (queueing included), in seconds, by command',
    labelNames: ['command'],
    buckets: [0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    registers: [registry],
  });
  // ioredis sends a command through here again after a reconnect: time it once, from its first pass.
  const timed = new WeakSet<Command>();
  const send: SendCommand = redis.sendCommand.bind(redis);
  redis.sendCommand = (command, ...rest) => {
    if (!timed.has(command)) {
      timed.add(command);
      const end = duration.startTimer({ command: command.name.toLowerCase() });
      command.promise.then(
        () => end(),
        () => end(),
      );
    }
    return send(command, ...rest);
  };
}
