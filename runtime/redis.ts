import Redis, { Command, type RedisOptions } from 'ioredis';
import { Counter, Histogram, type Registry } from 'prom-client';
import { errorMessage } from './errors';
import type { Logger } from './logger';

export type { Redis };

/**
 * How a service reaches Redis, read from REDIS_URL:
 * - `redis://[:password@]host:port[/db]`: one server (the development set-up);
 * - `redis-sentinel://[:password@]host:port,host:port,.../<master name>[/db]`:
 *   the primary that the listed Sentinels name, followed through failovers
 *   (the high-availability set-up, docs/cluster.md).
 * Either may end in `?waitReplicas=N&waitTimeoutMs=T`: every write is then
 * answered only once N replicas have it (Redis `WAIT`), so a payment
 * acknowledged with 202 survives the loss of the primary.
 */
export interface RedisTarget {
  /** ioredis options for the server or the Sentinels (without key prefix and retry policy). */
  options: RedisOptions;
  /** For logs and reports: where it connects, without the password. */
  description: string;
  /** Replicas every write must reach before its caller hears of it; 0 = do not wait. */
  waitReplicas: number;
  /** Longest wait for them, in ms; a write not confirmed in time fails. */
  waitTimeoutMs: number;
}

const DEFAULT_WAIT_TIMEOUT_MS = 1_000;
const hostPort = /^([^:,/]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/;

/** Parses REDIS_URL; throws an Error naming what is wrong (config turns it into a ConfigError). */
export function parseRedisTarget(url: string): RedisTarget {
  const match = /^([a-z+-]+):\/\/([^?#]*)(?:\?([^#]*))?$/.exec(url);
  if (!match) throw new Error('not a redis://, rediss:// or redis-sentinel:// URL');
  const [, scheme = '', rest = '', query = ''] = match;
  const params = new URLSearchParams(query);
  const waitReplicas = Number(params.get('waitReplicas') ?? '0');
  const waitTimeoutMs = Number(params.get('waitTimeoutMs') ?? DEFAULT_WAIT_TIMEOUT_MS);
  if (!Number.isInteger(waitReplicas) || waitReplicas < 0) throw new Error('waitReplicas must be a whole number ≥ 0');
  if (!Number.isInteger(waitTimeoutMs) || waitTimeoutMs < 1) throw new Error('waitTimeoutMs must be a whole number of ms ≥ 1');
  params.delete('waitReplicas');
  params.delete('waitTimeoutMs');
  const wait = { waitReplicas, waitTimeoutMs };

  if (scheme === 'redis' || scheme === 'rediss') {
    // ioredis parses the rest of the URL (host, password, db, its own query options) itself.
    const remaining = params.toString();
    const plain = `${scheme}://${rest}${remaining ? `?${remaining}` : ''}`;
    let parsed: URL;
    try {
      parsed = new URL(plain);
    } catch {
      throw new Error('not a valid URL');
    }
    const options: RedisOptions = { host: parsed.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1', port: Number(parsed.port || 6379) };
    if (parsed.password) options.password = decodeURIComponent(parsed.password);
    if (parsed.username) options.username = decodeURIComponent(parsed.username);
    const db = parsed.pathname.replace(/^\//, '');
    if (db) options.db = Number(db);
    if (scheme === 'rediss') options.tls = {};
    return { options, description: `${scheme}://${parsed.host}${parsed.pathname === '/' ? '' : parsed.pathname}`, ...wait };
  }
  if (scheme !== 'redis-sentinel') throw new Error(`unknown scheme ${scheme}: use redis://, rediss:// or redis-sentinel://`);

  const at = rest.lastIndexOf('@');
  const auth = at >= 0 ? rest.slice(0, at) : '';
  const [hosts = '', name = '', db] = (at >= 0 ? rest.slice(at + 1) : rest).split('/');
  if (!name) throw new Error('redis-sentinel:// needs the master name as its path: redis-sentinel://host:port,host:port/mymaster');
  const sentinels = hosts.split(',').map((entry) => {
    const found = hostPort.exec(entry.trim());
    if (!found) throw new Error(`Sentinel "${entry}" is not host:port`);
    return { host: found[1]!.replace(/^\[|\]$/g, ''), port: Number(found[2]) };
  });
  const options: RedisOptions = {
    sentinels,
    name: decodeURIComponent(name),
    // Reconnect as soon as the Sentinels announce a new primary, not when the old connection times out.
    failoverDetector: true,
    sentinelRetryStrategy: (attempt) => Math.min(attempt * 100, 1000),
  };
  if (auth) {
    const [user = '', password = ''] = auth.includes(':') ? auth.split(':') : ['', auth];
    if (user) options.username = decodeURIComponent(user);
    if (password) options.password = decodeURIComponent(password);
  }
  if (db) options.db = Number(db);
  return { options, description: `redis-sentinel://${hosts}/${name}`, ...wait };
}

/** What a connection that waits for replicas says about them (readiness). */
export interface ReplicaConfirmation {
  /**
   * False once {@link UNCONFIRMED_WAITS_BEFORE_NOT_READY} batches of writes
   * in a row (one `WAIT` each) were not confirmed by enough replicas in time
   * (after a failover that left the primary without one, every write fails):
   * the instance should not be sent work. True again at the next confirmed write, or when the primary lists
   * enough replicas in sync. Always true without `waitReplicas`.
   */
  writesConfirmed(): boolean;
}

/**
 * A Redis connection whose keys all carry the given prefix; with a registry,
 * its command latency is measured. `url` is a REDIS_URL ({@link parseRedisTarget}).
 */
export function createRedis(url: string, keyPrefix: string, logger: Logger, registry?: Registry): Redis & ReplicaConfirmation {
  const target = parseRedisTarget(url);
  const redis = new Redis({
    ...target.options,
    keyPrefix,
    lazyConnect: true,
    // Commands wait for a reconnect instead of failing at once: a Redis restart
    // (or a failover to the replica) delays work, it does not drop it.
    maxRetriesPerRequest: null,
    retryStrategy: (attempt) => Math.min(attempt * 100, 2000),
    // A write that reaches a primary demoted to replica (a failover the client
    // has not seen yet) reconnects, finds the new primary, and is sent again.
    reconnectOnError: (error) => (error.message.startsWith('READONLY') ? 2 : false),
    // Commands issued in the same tick (many payments at once) leave in one socket write, not one write each:
    // the profile showed per-command writes as the orchestrator's largest single cost under load.
    enableAutoPipelining: true,
  });
  redis.on('error', (error) => logger.warn({ err: error }, 'redis connection error'));
  if (target.options.sentinels) redis.on('+switch-master', () => logger.warn({ redis: target.description }, 'redis primary changed (Sentinel failover)'));
  const writesConfirmed = target.waitReplicas > 0 ? waitForReplicas(redis, target, logger, registry) : () => true;
  if (registry) measureCommands(redis, registry);
  return Object.assign(redis, { writesConfirmed });
}

type SendCommand = Redis['sendCommand'];
type RedisCommand = Parameters<SendCommand>[0];

/**
 * Times every command from the moment it is handed to the connection until
 * its reply (or error): what a caller waits, including time queued while
 * Redis reconnects and, for a write, the wait for replicas. Pipelined and
 * MULTI commands pass here one by one; a Lua script is `evalsha`. The command
 * name is the only label, so the set stays bounded.
 */
function measureCommands(redis: Redis, registry: Registry): void {
  const duration = new Histogram({
    name: 'redis_command_duration_seconds',
    help: 'Redis command latency as the service sees it (queueing and the wait for replicas included), in seconds, by command',
    labelNames: ['command'],
    buckets: [0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    registers: [registry],
  });
  // ioredis sends a command through here again after a reconnect: time it once, from its first pass.
  const timed = new WeakSet<RedisCommand>();
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

/** Commands that change data (scripts included): the ones a failover could lose. */
const WRITES = new Set(
  (
    'eval evalsha fcall set setex psetex setnx getset getdel getex append setrange incr incrby incrbyfloat decr decrby mset msetnx del unlink ' +
    'expire pexpire expireat pexpireat persist rename renamenx copy restore hset hsetnx hmset hdel hincrby hincrbyfloat sadd srem smove spop ' +
    'sinterstore sunionstore sdiffstore zadd zrem zincrby zpopmin zpopmax zremrangebyscore zremrangebyrank zremrangebylex zunionstore zinterstore ' +
    'zrangestore lpush rpush lpushx rpushx lpop rpop lrem lset ltrim linsert lmove rpoplpush xadd xdel xtrim pfadd setbit bitop geoadd flushdb flushall'
  ).split(' '),
);

/**
 * Thrown to a write's caller when the replicas did not confirm it: the write
 * may or may not survive a failover. The HTTP layer answers it with a
 * retryable 503 `storage_unconfirmed` (runtime/http.ts): the same request
 * again (same Idempotency-Key) is safe.
 */
export class NotReplicatedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NotReplicatedError';
  }
}

/** Batches of writes in a row (one `WAIT` each: the writes sent together) not confirmed by the replicas before {@link ReplicaConfirmation.writesConfirmed} turns false. */
export const UNCONFIRMED_WAITS_BEFORE_NOT_READY = 3;
/** While writes are unconfirmed, how often the primary's in-sync replicas are counted (`ROLE`), so readiness returns without traffic. */
const REPLICA_PROBE_MS = 1_000;

/**
 * Makes every write's reply wait until `waitReplicas` replicas have it. Writes
 * sent in the same tick share one `WAIT`, pipelined right behind them, so the
 * cost is one short blocking command per batch, not a round trip per write.
 * `WAIT` covers everything this connection wrote before it; if the connection
 * is lost in between (the primary died), the write fails rather than trust a
 * `WAIT` answered by a new primary that may never have seen it: the caller
 * retries, which every write here tolerates (idempotency key, compare-and-set).
 *
 * Returns whether writes are being confirmed ({@link ReplicaConfirmation}):
 * false after {@link UNCONFIRMED_WAITS_BEFORE_NOT_READY} `WAIT`s in a row
 * found too few replicas (a lost connection does not count: the next write
 * goes to the new primary). Then `ROLE` counts the primary's replicas every
 * second, since an instance taken out of the load balancer may get no write
 * to confirm; enough of them, or a confirmed write, make it true again.
 */
function waitForReplicas(redis: Redis, target: RedisTarget, logger: Logger, registry?: Registry): () => boolean {
  const { waitReplicas, waitTimeoutMs } = target;
  const unconfirmed = registry
    ? new Counter({ name: 'redis_writes_not_replicated_total', help: 'Writes failed because fewer replicas than required confirmed them in time', registers: [registry] })
    : undefined;

  let shortWaits = 0;
  let probe: NodeJS.Timeout | undefined;
  const confirmed = () => {
    if (shortWaits >= UNCONFIRMED_WAITS_BEFORE_NOT_READY) logger.warn({ waitReplicas }, 'redis writes are confirmed by the replicas again');
    shortWaits = 0;
    clearInterval(probe);
    probe = undefined;
  };
  const countReplicas = async () => {
    if (redis.status !== 'ready') return;
    // ["master", offset, [[host, port, offset], ...]]: only the replicas that are in sync (online) are listed.
    const role = (await redis.role().catch(() => [])) as unknown[];
    if (role[0] === 'master' && Array.isArray(role[2]) && role[2].length >= waitReplicas) confirmed();
  };
  const shortWait = () => {
    shortWaits += 1;
    if (shortWaits !== UNCONFIRMED_WAITS_BEFORE_NOT_READY) return;
    logger.error({ waitReplicas, waitTimeoutMs, writes: shortWaits }, 'redis writes are not confirmed by the replicas: not ready until they are');
    probe = setInterval(() => void countReplicas(), REPLICA_PROBE_MS).unref();
  };
  redis.once('end', () => clearInterval(probe));

  let batch: Promise<void> | undefined;
  const nextBatch = (): Promise<void> => {
    if (batch) return batch;
    batch = new Promise<void>((resolve, reject) => {
      // After the current tick: every write of this tick (a whole pipeline, a MULTI block) is on the socket first.
      process.nextTick(() => {
        batch = undefined;
        // The socket the writes went out on: a WAIT answered on another one (resent after a reconnect) proves nothing about them.
        const socket = redis.stream;
        const wait = new Command('wait', [waitReplicas, waitTimeoutMs]);
        // Through the outer sendCommand, so the WAIT itself shows in the latency histogram (its cost).
        void redis.sendCommand(wait);
        wait.promise.then(
          (acknowledged: unknown) => {
            if (redis.stream !== socket) {
              reject(new NotReplicatedError('the Redis connection changed before the write was confirmed on a replica'));
            } else if (Number(acknowledged) < waitReplicas) {
              shortWait();
              reject(new NotReplicatedError(`write confirmed by ${String(acknowledged)} of ${waitReplicas} replica(s) within ${waitTimeoutMs} ms`));
            } else {
              confirmed();
              resolve();
            }
          },
          // WAIT itself refused (sent to a server that is a replica now): the write is not known to be on a replica either.
          (error: unknown) => reject(new NotReplicatedError(`the replicas' confirmation failed: ${errorMessage(error)}`, { cause: error })),
        );
      });
    });
    // Callers attach later; an unconfirmed batch must not be an unhandled rejection meanwhile.
    batch.catch(() => undefined);
    return batch;
  };

  const latest = new WeakMap<RedisCommand, Promise<void>>();
  const send: SendCommand = redis.sendCommand.bind(redis);
  redis.sendCommand = (command, ...rest) => {
    if (WRITES.has(command.name.toLowerCase())) {
      // Sent again after a reconnect: the WAIT behind this pass is the one that counts.
      const first = !latest.has(command);
      latest.set(command, nextBatch());
      if (first) {
        const { resolve, reject } = command;
        command.resolve = (reply) => {
          latest.get(command)!.then(
            () => resolve(reply),
            (error: Error) => {
              unconfirmed?.inc();
              logger.warn({ err: error, command: command.name }, 'redis write not confirmed by its replicas');
              reject(error);
            },
          );
        };
      }
    }
    return send(command, ...rest);
  };
  return () => shortWaits < UNCONFIRMED_WAITS_BEFORE_NOT_READY;
}
