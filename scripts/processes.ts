// Runs a service's main.ts as a real process: used by the integration tests
// that SIGKILL or SIGTERM an instance, and by the benchmarks, which read each
// service's CPU and memory from /proc and may run it under the V8 profiler.
// A service started here never outlives the process that started it: it
// drains and exits when that process goes away (runtime/supervisor.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
/** How much of a service's output is kept for an error message. */
const OUTPUT_TAIL_CHARS = 20_000;

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface ServiceProcess {
  baseUrl: string;
  child: ChildProcess;
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<number | NodeJS.Signals>;
  /** The last lines the process wrote (stdout and stderr). */
  output: () => string;
}

/**
 * Node flags every service runs with, here as in the image (the Dockerfile's
 * NODE_OPTIONS, and COMMAND_LINE_NODE_FLAGS on each command line):
 * - a 32 MB young generation (semi-space) instead of V8's 16 MB. A service
 *   allocates a few short-lived documents and messages per payment, and with
 *   the default the scavenger ran often enough to be the largest single cost
 *   in the orchestrator's profile; 32 MB kept RSS under 300 MB flat out, 64 MB
 *   did not (docs/decisions/0019-young-generation-size.md);
 * - no full collection before the old generation holds 64 MB. A gateway
 *   worker keeps about 20 MB alive, V8's limit followed it, and at load it ran
 *   a full collection every 2 to 3 s, each one dropping the optimised code of
 *   kafkajs' per-call closures so they were compiled again
 *   (docs/decisions/0021-old-generation-floor.md).
 */
export const SERVICE_NODE_FLAGS = ['--max-semi-space-size=32', '--initial-old-space-size=64'];
/** Those of SERVICE_NODE_FLAGS that node refuses in NODE_OPTIONS: the image's, compose's and deploy/'s commands carry them. */
export const COMMAND_LINE_NODE_FLAGS = SERVICE_NODE_FLAGS.filter((flag) => flag.startsWith('--initial-old-space-size'));

export interface ServiceProcessOptions {
  readyTimeoutMs?: number;
  /** Flags for node itself, before the script (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /**
   * Append stdout and stderr to this file instead of piping them through
   * this process: under load the logs of a busy service would otherwise cost
   * the caller CPU.
   */
  logFile?: string;
}

/**
 * Runs a service's main.ts as its own process (as production does), so a
 * caller can SIGKILL or SIGTERM it; resolves once its /readyz answers 200.
 */
export async function startServiceProcess(script: string, env: Record<string, string>, options: ServiceProcessOptions = {}): Promise<ServiceProcess> {
  const { readyTimeoutMs = 30_000, nodeArgs = [], logFile } = options;
  const port = await freePort();
  const logFd = logFile === undefined ? undefined : openSync(logFile, 'a');
  // node with tsx's loader, not the tsx wrapper: one process, so a signal reaches the service itself.
  // The IPC channel is the service's lifeline (runtime/supervisor.ts): if this
  // process dies, even by SIGKILL, the service drains and exits by itself.
  const child = spawn(process.execPath, [...SERVICE_NODE_FLAGS, ...nodeArgs, '--import', 'tsx', script], {
    cwd: ROOT,
    env: { ...process.env, ...env, PORT: String(port) },
    stdio: logFd === undefined ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', logFd, logFd, 'ipc'],
  });
  // Nothing is sent on the channel: it must not keep this process (a jest worker, a benchmark) alive.
  child.channel?.unref();
  // The child holds its own copy of the descriptor.
  if (logFd !== undefined) closeSync(logFd);
  let piped = '';
  const keep = (chunk: Buffer) => {
    piped = (piped + chunk.toString()).slice(-OUTPUT_TAIL_CHARS);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const output = () => (logFile === undefined ? piped : readFileSync(logFile, 'utf8').slice(-OUTPUT_TAIL_CHARS));
  const exited = new Promise<number | NodeJS.Signals>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code ?? -1)));
  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${script} exited during start-up:\n${output()}`);
    const ready = await fetch(`${baseUrl}/readyz`).then(
      (response) => response.status === 200,
      () => false,
    );
    if (ready) return { baseUrl, child, exited, output };
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${script} not ready after ${readyTimeoutMs} ms:\n${output()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
