import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { freePort } from '../../scripts/processes';
import { reapOnExit, type Reaping } from '../../scripts/reaper';
import { ensureDebianPackages } from './debian';
import { pollUntil } from './poll';

export const SENTINEL_MASTER = 'pgo';

interface Server {
  name: string;
  port: number;
  child: ChildProcess;
  exited: Promise<void>;
  /** Stops it if the jest worker dies first (scripts/reaper.ts). */
  reaping: Reaping;
}

export interface OwnedSentinelSet {
  /** REDIS_URL for the services: the Sentinels, the master name, and the wait for one replica. */
  url: string;
  /** The same Redis without the wait (for a benchmark of its cost). */
  urlWithoutWait: string;
  /** SIGKILLs the primary; resolves once the process is gone. Returns its port. */
  killPrimary(): Promise<number>;
  /** Resolves once every Sentinel names the same primary, another than `oldPort`: the failover is settled. */
  untilFailover(oldPort: number, timeoutMs?: number): Promise<number>;
  /**
   * Starts the killed server again, as a supervisor would (as a primary); the Sentinels make it a replica. Resolves
   * with the primary's port once the set is whole again: every Sentinel names one primary, and it has a replica in
   * sync. On a loaded machine the Sentinels may have failed over once more meanwhile, so the primary is not assumed.
   */
  restart(port: number, timeoutMs?: number): Promise<number>;
  dispose(): Promise<void>;
}

const REDIS_SERVER = '/usr/bin/redis-server';
const REDIS_SENTINEL = '/usr/bin/redis-sentinel';

/**
 * A primary, a replica and three Sentinels from Debian's redis-server and
 * redis-sentinel (installed with the project's own script when missing), on
 * free ports, with data in a temporary directory: the high-availability
 * set-up of docs/cluster.md at the size of one test. Failure detection is
 * fast (down after 1 s) so a failover takes seconds.
 */
export async function startSentinelSet(): Promise<OwnedSentinelSet> {
  await ensureDebianPackages(['redis-server', 'redis-sentinel'], [REDIS_SERVER, REDIS_SENTINEL]);
  const dir = mkdtempSync(path.join(tmpdir(), 'pgo-test-sentinel-'));
  const [primaryPort, replicaPort] = [await freePort(), await freePort()];
  const sentinelPorts = [await freePort(), await freePort(), await freePort()];
  const servers = new Map<number, Server>();

  const launch = async (name: string, port: number, binary: string, args: string[], ready: string) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    servers.set(port, { name, port, child, exited, reaping: await reapOnExit(`${name} on ${port}`, child.pid === undefined ? [] : [child.pid]) });
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} on ${port} not ready after 15 s:\n${output}`)), 15_000);
      child.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes(ready)) {
          clearTimeout(timer);
          resolve();
        }
      });
      // `exited`, not a listener added now: the process may have exited while the reaper took its pid.
      void exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`${name} on ${port} exited with ${child.exitCode ?? child.signalCode} during start-up:\n${output}`));
      });
    });
  };
  const serverArgs = (port: number) => {
    const data = path.join(dir, `redis-${port}`);
    mkdirSync(data, { recursive: true });
    return ['--port', String(port), '--bind', '127.0.0.1', '--dir', data, '--appendonly', 'yes', '--save', '', '--daemonize', 'no', '--loglevel', 'notice'];
  };
  const startServer = (port: number, replicaOf?: number) =>
    launch(`redis ${port}`, port, REDIS_SERVER, [...serverArgs(port), ...(replicaOf ? ['--replicaof', '127.0.0.1', String(replicaOf)] : [])], 'Ready to accept connections');

  /** One question to the server or Sentinel on `port` over a connection of its own; undefined when it does not answer. */
  const ask = async <T>(port: number, question: (connection: Redis) => Promise<T>): Promise<T | undefined> => {
    const connection = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    try {
      await connection.connect();
      return await question(connection);
    } catch {
      return undefined;
    } finally {
      connection.disconnect();
    }
  };
  /** The primary each Sentinel names (undefined for one that does not answer), in the order of sentinelPorts. */
  const everySentinel = (): Promise<Array<number | undefined>> =>
    Promise.all(
      sentinelPorts.map(async (port) => {
        const answer = await ask(port, (sentinel) => sentinel.call('SENTINEL', 'get-master-addr-by-name', SENTINEL_MASTER) as Promise<[string, string] | null>);
        return answer ? Number(answer[1]) : undefined;
      }),
    );
  /** The primary every Sentinel names, when they all answer and agree. */
  const agreedPrimary = async (): Promise<number | undefined> => {
    const named = await everySentinel();
    return named.every((port) => port !== undefined && port === named[0]) ? named[0] : undefined;
  };
  /** The primary the first Sentinel that answers names. */
  const askSentinels = async (): Promise<number | undefined> => (await everySentinel()).find((port) => port !== undefined);

  const stopAll = async () => {
    for (const server of servers.values()) {
      if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGTERM');
      await server.exited;
      await server.reaping.release();
    }
  };

  try {
    await startServer(primaryPort);
    await startServer(replicaPort, primaryPort);
    for (const port of sentinelPorts) {
      // Sentinel rewrites its configuration file (what it learns), so each gets its own.
      const config = path.join(dir, `sentinel-${port}.conf`);
      writeFileSync(
        config,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${primaryPort} 2`,
          `sentinel down-after-milliseconds ${SENTINEL_MASTER} 1000`,
          `sentinel failover-timeout ${SENTINEL_MASTER} 10000`,
          `sentinel parallel-syncs ${SENTINEL_MASTER} 1`,
          '',
        ].join('\n'),
      );
      await launch(`sentinel ${port}`, port, REDIS_SENTINEL, [config], 'Sentinel ID is');
    }
    // Ready when the replica is in sync (a failover needs a replica the Sentinels know).
    const primary = new Redis({ port: primaryPort, host: '127.0.0.1' });
    await pollUntil(
      async () => String(await primary.info('replication')),
      (info) => /slave0:.*state=online/.test(info),
      15_000,
      (info) => `replica not in sync after 15 s:\n${info}`,
      100,
    ).finally(() => primary.disconnect());
  } catch (error) {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  const sentinels = sentinelPorts.map((port) => `127.0.0.1:${port}`).join(',');
  return {
    url: `redis-sentinel://${sentinels}/${SENTINEL_MASTER}?waitReplicas=1&waitTimeoutMs=1000`,
    urlWithoutWait: `redis-sentinel://${sentinels}/${SENTINEL_MASTER}`,
    async killPrimary() {
      const port = await askSentinels();
      const server = port === undefined ? undefined : servers.get(port);
      if (!server) throw new Error(`the primary (port ${port}) is not a server of this set`);
      server.child.kill('SIGKILL');
      await server.exited;
      await server.reaping.release();
      return server.port;
    },
    untilFailover: (oldPort, timeoutMs = 30_000) =>
      pollUntil(
        async () => (await agreedPrimary()) ?? oldPort,
        (port) => port !== oldPort,
        timeoutMs,
        () => `the Sentinels do not all name one primary other than ${oldPort} after ${timeoutMs} ms`,
        100,
      ),
    async restart(port, timeoutMs = 30_000) {
      // Started as a primary, as a supervisor would; a Sentinel turns it into a replica of the primary they agree on.
      await startServer(port);
      let seen = '';
      const whole = async (): Promise<number | undefined> => {
        const primary = await agreedPrimary();
        if (primary === undefined) return undefined;
        seen = (await ask(primary, async (server) => String(await server.info('replication')))) ?? '';
        return /role:master/.test(seen) && /slave0:.*state=online/.test(seen) ? primary : undefined;
      };
      return pollUntil(whole, (primary): primary is number => primary !== undefined, timeoutMs, () => `the set is not whole ${timeoutMs} ms after restarting ${port}:\n${seen}`, 100);
    },
    async dispose() {
      await stopAll();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
