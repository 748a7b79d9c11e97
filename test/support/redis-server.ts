import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '../../scripts/processes';
import { reapOnExit, type Reaping } from '../../scripts/reaper';

export interface OwnedRedis {
  url: string;
  /** Stops the server as an operator would (SIGTERM: Redis writes its append-only file and exits). */
  stop(): Promise<void>;
  /** Starts it again on the same port and data directory; resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops it if it runs and deletes its data directory. */
  dispose(): Promise<void>;
}

/**
 * A `redis-server` owned by one test, on a free port, with the append-only
 * file on in a temporary directory, so the test can restart it without
 * touching the shared Redis on 6379, and find its data again afterwards;
 * with `replicaOf`, a replica of another such server. If the jest worker
 * dies first, the reaper (scripts/reaper.ts) stops it.
 */
export async function startOwnedRedis(options: { replicaOf?: number } = {}): Promise<OwnedRedis> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'pgo-test-redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--appendonly', 'yes', '--dir', dir, '--save', '', '--daemonize', 'no', '--loglevel', 'notice'];
  // A replica of the server on that port (of this machine), as a Sentinel set's replica is.
  if (options.replicaOf !== undefined) args.push('--replicaof', '127.0.0.1', String(options.replicaOf));
  let server: { child: ChildProcess; exited: Promise<void> } | undefined;
  // Held from the first start to dispose(), moved to each new process: a restart under a test's load must not
  // wait for (and pay the CPU of) a new reaper process.
  let reaping: Reaping | undefined;

  const start = async () => {
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    server = { child, exited };
    const previous = reaping;
    reaping = await reapOnExit(`redis-server on ${port}`, child.pid === undefined ? [] : [child.pid]);
    await previous?.release();
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server on ${port} not ready after 15 s:\n${output}`)), 15_000);
      child.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        // Printed once the data set (the append-only file) is loaded.
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      });
      // `exited`, not a listener added now: the process may have exited while the reaper took its pid.
      void exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`redis-server on ${port} exited with ${child.exitCode ?? child.signalCode} during start-up:\n${output}`));
      });
    });
  };

  const stop = async () => {
    if (!server) return;
    const { child, exited } = server;
    server = undefined;
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };

  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    stop,
    start,
    async dispose() {
      await stop();
      await reaping?.release();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
