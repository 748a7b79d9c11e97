import { readdirSync, readFileSync } from 'node:fs';
import { pollUntil } from './poll';

// The machine's processes as /proc lists them, for tests that check what a
// killed supervisor, test run or benchmark left behind.

interface ProcessEntry {
  pid: number;
  ppid: number;
  /** Single-letter state from /proc/<pid>/stat; Z is a zombie, as good as gone. */
  state: string;
}

function processTable(): ProcessEntry[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .flatMap((name) => {
      try {
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
        // The command name (field 2) may hold spaces; it ends at the last ')'.
        const [state = '', ppid = '0'] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        return [{ pid: Number(name), ppid: Number(ppid), state }];
      } catch {
        return []; // exited while the table was read
      }
    });
}

/** Every process below `pid` (children, grandchildren, …), alive now. */
export function descendants(pid: number): number[] {
  const table = processTable().filter((entry) => entry.state !== 'Z');
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift();
    for (const entry of table) {
      if (entry.ppid === parent) {
        found.push(entry.pid);
        queue.push(entry.pid);
      }
    }
  }
  return found;
}

/** The command line of `pid`, its arguments joined by spaces ('' once it has exited). */
export const commandLine = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
};

/** Those of `pids` that are still running (zombies count as gone). */
export const alive = (pids: number[]) => {
  const running = new Set(processTable().filter((entry) => entry.state !== 'Z').map((entry) => entry.pid));
  return pids.filter((pid) => running.has(pid));
};

/**
 * Resolves once none of `pids` runs (they need not be this process's
 * children, so nothing announces their exit); after `timeoutMs` fails with
 * `failure(those still running)`.
 */
export const untilGone = (pids: number[], timeoutMs: number, failure: (left: number[]) => string) =>
  pollUntil(async () => alive(pids), (left) => left.length === 0, timeoutMs, failure, 50);
