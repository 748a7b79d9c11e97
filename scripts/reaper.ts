// Stops what a process started when that process dies without stopping it.
//
// A Node service learns of its supervisor's death through its IPC channel
// (runtime/supervisor.ts), but a Kafka broker, redis-server, Prometheus or
// Alertmanager watches no channel. Whoever starts one hands its pid here: a
// small reaper process (this file, run as a script) holds an IPC channel to
// its owner, and the kernel closes it when the owner exits, however it exits
// (SIGKILL, out of memory, a jest worker torn down). The reaper then stops
// every pid still registered, and exits. A normal stop releases the pids
// first, so the reaper finds nothing to do.
//
// - Each reapOnExit() call is a group. Groups stop newest first, each once
//   the one registered after it has exited, as a lifecycle's disposers run
//   in reverse order: `npm start`'s services drain before its broker stops.
// - A group is sent SIGTERM, and SIGKILL what is left after its grace; a
//   group of Node services that drain by themselves is only waited for.
// - The reaper notes each pid's start time when it is registered and only
//   signals that same process, never another that reused the pid.
// - One reaper per process, started by the first registration and closed
//   when the last group is released. It runs in a process group of its own,
//   so a terminal's Ctrl-C leaves it to its owner's normal stop.
//
// Used by `npm start` (scripts/stack.ts), the local Kafka (scripts/kafka-local.ts,
// option stopOnExit: the jest global setup, test/support/kafka-cluster.ts, the
// benchmarks), grafana/prometheus/local.ts and test/support/redis-*.ts.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { z } from 'zod';

const ROOT = path.resolve(__dirname, '..');
const REAPER_FLAG = '--reaper';
/** SIGKILL for what still runs this long after SIGTERM, unless a group says otherwise. */
export const DEFAULT_GRACE_MS = 20_000;
/** How often the reaper looks whether a group's processes have exited (they are not its children). */
const EXIT_POLL_MS = 100;

export interface ReapOptions {
  /** SIGKILL what still runs this long after the group's turn came (after SIGTERM). */
  graceMs?: number;
  /**
   * Node services that drain and exit by themselves when this process's IPC
   * channel to them closes (runtime/supervisor.ts): waited for, not sent
   * SIGTERM (which would race their own drain), SIGKILLed after the grace.
   */
  exitByThemselves?: boolean;
}

export interface Reaping {
  /**
   * Forgets the group: call once its processes are stopped the normal way.
   * Resolves at once, or, when it was the last group, once the reaper has exited.
   */
  release(): Promise<void>;
}

const toReaper = z.union([
  z.object({ watch: z.number().int(), label: z.string(), pids: z.array(z.number().int().positive()), graceMs: z.number().int().min(0), exitByThemselves: z.boolean() }),
  z.object({ forget: z.number().int() }),
]);
const fromReaper = z.union([z.object({ ready: z.literal(true) }), z.object({ watching: z.number().int() })]);

interface Connection {
  child: ChildProcess;
  ready: Promise<void>;
  /** Resolves when the reaper process has exited. */
  exited: Promise<void>;
  groups: Set<number>;
  /** Registrations the reaper has not acknowledged yet. */
  pending: Map<number, { resolve: () => void; reject: (error: Error) => void }>;
}

let connection: Connection | undefined;
let nextGroup = 1;

/**
 * Hands `pids` to this process's reaper, which stops them if this process
 * exits before `release()`. Resolves once the reaper holds them.
 */
export async function reapOnExit(label: string, pids: readonly number[], options: ReapOptions = {}): Promise<Reaping> {
  if (pids.length === 0) return { release: async () => undefined };
  const current = (connection ??= connect());
  const id = nextGroup++;
  current.groups.add(id);
  const release = async () => {
    if (!current.groups.delete(id)) return;
    if (current.child.connected) current.child.send({ forget: id }, () => undefined);
    if (current.groups.size > 0) return;
    // Nothing left to watch: the reaper exits once the channel closes.
    if (connection === current) connection = undefined;
    // The child is unreferenced (it must not keep this process alive) and its channel is about to close: without a
    // reference, nothing keeps the event loop running while this waits, and Node would exit here, with code 0,
    // in the middle of its caller (jest's global teardown, which then never set the run's failure exit code).
    current.child.ref();
    if (current.child.connected) current.child.disconnect();
    await current.exited;
  };
  try {
    await current.ready;
    await new Promise<void>((resolve, reject) => {
      current.pending.set(id, { resolve, reject });
      current.child.channel?.ref();
      const message = { watch: id, label, pids, graceMs: options.graceMs ?? DEFAULT_GRACE_MS, exitByThemselves: options.exitByThemselves ?? false };
      current.child.send(message, (error) => error && reject(error));
    }).finally(() => {
      current.pending.delete(id);
      // The channel is a lifeline only: between registrations it must not keep this process alive.
      if (current.pending.size === 0) current.child.channel?.unref();
    });
  } catch (error) {
    await release();
    throw error;
  }
  return { release };
}

function connect(): Connection {
  const child = spawn(process.execPath, ['--import', 'tsx', __filename, REAPER_FLAG], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  child.unref();
  const pending: Connection['pending'] = new Map();
  const exited = new Promise<void>((resolve) => {
    child.once('error', () => resolve());
    child.once('exit', () => resolve());
  });
  const ready = new Promise<void>((resolve, reject) => {
    const gone = (why: string) => {
      const error = new Error(`the reaper (scripts/reaper.ts) ${why}`);
      reject(error);
      for (const waiter of pending.values()) waiter.reject(error);
      if (connection?.child === child) connection = undefined;
    };
    child.once('error', (error) => gone(`could not start: ${error.message}`));
    child.once('exit', (code, signal) => gone(`exited (${signal ?? code})`));
    child.on('message', (raw: unknown) => {
      const message = fromReaper.safeParse(raw);
      if (!message.success) return;
      if ('ready' in message.data) resolve();
      else pending.get(message.data.watching)?.resolve();
    });
  });
  // Someone awaits `ready` with each registration; this only keeps an early failure from going unhandled.
  ready.catch(() => undefined);
  return { child, ready, exited, groups: new Set(), pending };
}

// ---- The reaper process ----

interface Group {
  label: string;
  /** Each pid with its start time when registered (undefined: already gone). */
  processes: Array<{ pid: number; started: string | undefined }>;
  graceMs: number;
  exitByThemselves: boolean;
}

const HAS_PROC = existsSync('/proc/self/stat');

/**
 * What tells this process from a later one with the same pid: its start time
 * (/proc/<pid>/stat field 22); undefined once it has exited or is a zombie.
 * Without /proc (not Linux), only whether the pid is in use.
 */
function identity(pid: number): string | undefined {
  if (!HAS_PROC) {
    try {
      process.kill(pid, 0);
      return 'running';
    } catch {
      return undefined;
    }
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; it ends at the last ')'. Field 3 is the state, 22 the start time.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] === 'Z' ? undefined : fields[19];
  } catch {
    return undefined;
  }
}

const say = (message: string) => process.stderr.write(`${'reaper'.padEnd(14)}| ${message}\n`);

function signal(pids: number[], name: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, name);
    } catch {
      // Exited meanwhile.
    }
  }
}

async function stopGroup(group: Group): Promise<void> {
  const running = () => group.processes.filter(({ pid, started }) => started !== undefined && identity(pid) === started).map(({ pid }) => pid);
  const left = running();
  if (left.length === 0) return;
  if (!group.exitByThemselves) signal(left, 'SIGTERM');
  say(`${group.label}: owner gone, ${group.exitByThemselves ? 'waiting for' : 'stopping'} pid ${left.join(', ')}`);
  const deadline = Date.now() + group.graceMs;
  while (running().length > 0 && Date.now() < deadline) await delay(EXIT_POLL_MS);
  const stuck = running();
  if (stuck.length === 0) return;
  say(`${group.label}: pid ${stuck.join(', ')} still running after ${group.graceMs / 1000} s: SIGKILL`);
  signal(stuck, 'SIGKILL');
}

function runReaper(): void {
  // The owner's stderr may be a pipe nobody reads any more: a failed write must not stop the reaping.
  process.stderr.on('error', () => undefined);
  const groups = new Map<number, Group>();
  process.on('message', (raw: unknown) => {
    const message = toReaper.safeParse(raw);
    if (!message.success) return;
    if ('forget' in message.data) {
      groups.delete(message.data.forget);
      return;
    }
    const { watch, label, pids, graceMs, exitByThemselves } = message.data;
    groups.set(watch, { label, processes: pids.map((pid) => ({ pid, started: identity(pid) })), graceMs, exitByThemselves });
    process.send?.({ watching: watch });
  });
  process.once('disconnect', () => {
    void (async () => {
      for (const group of [...groups.values()].reverse()) await stopGroup(group);
    })();
  });
  // Only now: a registration sent before this listener existed would be lost.
  process.send?.({ ready: true });
}

if (require.main === module && process.argv.includes(REAPER_FLAG)) runReaper();
