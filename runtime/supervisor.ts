// "The supervisor is gone" detection, for both ends of a supervised process
// tree: a service started by `npm start` (scripts/stack.ts) or by the test and
// benchmark helpers (scripts/processes.ts), and that supervisor itself.
//
// A service learns of its supervisor through the Node IPC channel the
// supervisor opens when it spawns it (stdio 'ipc'), and nothing else:
// - The kernel closes the channel's socket when the supervisor dies, however
//   it dies (SIGKILL, out of memory), so 'disconnect' fires at once: no
//   polling, and no pid that could be reused by another process.
// - It is opt-in by the spawner: a process started by Docker, Kubernetes,
//   systemd or a shell has no channel and watches nothing, so a container's
//   PID 1 or a `nohup`ed service is never stopped by this.
// Rejected: polling `process.ppid` in the services (fires for a nohup'ed
// service whose shell exits, and never fires when a `tsx` wrapper sits between
// supervisor and service); a SUPERVISOR_PID variable (polling, pid reuse, and
// one more variable in every config schema); EOF on stdin (stdin is /dev/null
// in containers, or a user's own pipe); PR_SET_PDEATHSIG (not reachable from Node).
import { fstatSync } from 'node:fs';
import pino from 'pino';
import type { Logger } from './logger';

/**
 * Calls `onGone` once when the process that spawned this one with an IPC
 * channel closes it or dies. Returns false, and watches nothing, when this
 * process has no IPC channel (it was not started by a supervisor).
 */
export function onSupervisorGone(onGone: () => void): boolean {
  const channel = process.channel;
  if (channel === undefined) return false;
  // The open channel must not keep a drained service's event loop alive.
  channel.unref();
  process.once('disconnect', onGone);
  return true;
}

export interface ParentWatch {
  /** The parent's pid when the watch began. */
  parentPid: number;
  stop: () => void;
}

/**
 * For a supervisor that has no IPC channel to its own parent (npm runs
 * `scripts/stack.ts`): calls `onGone` once this process's parent pid changes,
 * i.e. the parent died and the process was re-parented to init or a
 * subreaper. Checks every `intervalMs` milliseconds (the timer does not keep
 * the process alive). Returns undefined when the parent is already init (pid
 * 1) or unknown (0): there is nothing that could go away.
 */
export function watchParent(onGone: (formerParentPid: number) => void, intervalMs = 500): ParentWatch | undefined {
  const parentPid = process.ppid;
  if (parentPid <= 1) return undefined;
  const timer = setInterval(() => {
    // process.ppid is read from the kernel on each access, not cached at start-up.
    if (process.ppid === parentPid) return;
    clearInterval(timer);
    onGone(parentPid);
  }, intervalMs);
  timer.unref();
  return { parentPid, stop: () => clearInterval(timer) };
}

/** The part of pino's destination (a SonicBoom) that writes to stdout. */
interface Destination {
  write: (chunk: string) => boolean;
  flush: (callback?: () => void) => void;
  flushSync: () => void;
  end: () => void;
}

/**
 * Once the supervisor is gone, a stdout that is a pipe or socket was its
 * pipe, and nobody reads it any more: every write fails with EPIPE. pino's
 * buffered destination (sonic-boom 4.2) retries a failed synchronous flush
 * forever unless the error is EAGAIN/EBUSY, and the logger flushes
 * synchronously on exit, so the drain would end in a busy loop and the
 * process would never exit. This drops the logger's output instead, as pino
 * does itself when an asynchronous write meets EPIPE. Returns false, and
 * changes nothing, when stdout is a file or a terminal (a benchmark's log
 * file keeps the drain's lines).
 */
export function dropLogsIfStdoutWasSupervisors(logger: Logger): boolean {
  let piped: boolean;
  try {
    const stat = fstatSync(1);
    piped = stat.isFIFO() || stat.isSocket();
  } catch {
    piped = false;
  }
  if (!piped) return false;
  // pino.symbols.streamSym is pino's public handle on a logger's destination.
  const destination = (logger as unknown as Record<symbol, Destination | undefined>)[pino.symbols.streamSym];
  if (destination === undefined) return false;
  destination.write = () => true;
  destination.flush = (callback) => callback?.();
  destination.flushSync = () => undefined;
  destination.end = () => undefined;
  return true;
}
