// Reads the CPU time and resident memory of named processes from /proc once
// a second (Linux only), and the whole machine's busy share, so a benchmark
// can say what each process cost while it ran and whether the machine was
// the limit.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface WatchedProcess {
  name: string;
  pid: number;
}

export interface ProcessSample {
  /** performance.now() of the sample. */
  atMs: number;
  /** Share of one core since the previous sample: 200 means two cores busy. */
  cpuPercent: number;
  rssMB: number;
}

export interface ProcessSummary {
  name: string;
  pid: number;
  cpuAvgPercent: number;
  cpuPeakPercent: number;
  rssAvgMB: number;
  rssPeakMB: number;
  rssFirstMB: number;
  rssLastMB: number;
}

export interface Sampler {
  /** Starts sampling one more process (e.g. an orchestrator started later). */
  watch(process: WatchedProcess): void;
  /** The last sample of a process still running (undefined once it has stopped). */
  latest(name: string): ProcessSample | undefined;
  series(name: string): readonly ProcessSample[];
  /** Per-process figures over [fromMs, toMs] (performance.now() times); processes with no sample there are left out. */
  summaries(fromMs: number, toMs: number): ProcessSummary[];
  /** Average share of all cores that was busy over [fromMs, toMs], in percent. */
  machineBusyPercent(fromMs: number, toMs: number): number;
  stop(): void;
}

/** Clock ticks per second of the utime/stime fields: almost always 100, but asked rather than assumed. */
function clockTicksPerSecond(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}

/** User + system CPU seconds and RSS of a live process; undefined once it has gone. */
function readProcess(pid: number, ticksPerSecond: number): { cpuSeconds: number; rssMB: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count fields after it.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]); // utime and stime, fields 14 and 15
    const rssKiB = Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    return { cpuSeconds: ticks / ticksPerSecond, rssMB: rssKiB / 1024 };
  } catch {
    return undefined;
  }
}

/** Busy and total jiffies of all cores together (first line of /proc/stat). */
function readMachine(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (values[3] ?? 0) + (values[4] ?? 0); // idle + iowait
  const total = values.reduce((sum, value) => sum + value, 0);
  return { busy: total - idle, total };
}

const round = (value: number) => Number(value.toFixed(1));
const average = (values: number[]) => (values.length === 0 ? 0 : values.reduce((sum, value) => sum + value, 0) / values.length);

export function startSampler(initial: WatchedProcess[], intervalMs = 1_000): Sampler {
  const ticksPerSecond = clockTicksPerSecond();
  const watched = new Map<string, { pid: number; last?: { atMs: number; cpuSeconds: number }; samples: ProcessSample[] }>();
  const machine: Array<{ atMs: number; busyPercent: number }> = [];
  let lastMachine = { atMs: performance.now(), ...readMachine() };

  const watch = ({ name, pid }: WatchedProcess) => {
    const now = readProcess(pid, ticksPerSecond);
    watched.set(name, { pid, samples: [], ...(now ? { last: { atMs: performance.now(), cpuSeconds: now.cpuSeconds } } : {}) });
  };
  initial.forEach(watch);

  const sample = () => {
    const atMs = performance.now();
    for (const entry of watched.values()) {
      const now = readProcess(entry.pid, ticksPerSecond);
      if (!now) continue;
      if (entry.last) {
        const cpuPercent = ((now.cpuSeconds - entry.last.cpuSeconds) / ((atMs - entry.last.atMs) / 1000)) * 100;
        entry.samples.push({ atMs, cpuPercent, rssMB: now.rssMB });
      }
      entry.last = { atMs, cpuSeconds: now.cpuSeconds };
    }
    const current = readMachine();
    const total = current.total - lastMachine.total;
    machine.push({ atMs, busyPercent: total > 0 ? ((current.busy - lastMachine.busy) / total) * 100 : 0 });
    lastMachine = { atMs, ...current };
  };
  const timer = setInterval(sample, intervalMs);

  const within = <T extends { atMs: number }>(samples: readonly T[], fromMs: number, toMs: number) => samples.filter((s) => s.atMs >= fromMs && s.atMs <= toMs);

  return {
    watch,
    latest(name) {
      const last = watched.get(name)?.samples.at(-1);
      return last && performance.now() - last.atMs < 2.5 * intervalMs ? last : undefined;
    },
    series: (name) => watched.get(name)?.samples ?? [],
    summaries(fromMs, toMs) {
      return [...watched].flatMap(([name, { pid, samples }]) => {
        const window = within(samples, fromMs, toMs);
        if (window.length === 0) return [];
        const cpu = window.map((s) => s.cpuPercent);
        const rss = window.map((s) => s.rssMB);
        return [
          {
            name,
            pid,
            cpuAvgPercent: round(average(cpu)),
            cpuPeakPercent: round(Math.max(...cpu)),
            rssAvgMB: round(average(rss)),
            rssPeakMB: round(Math.max(...rss)),
            rssFirstMB: round(rss[0] ?? 0),
            rssLastMB: round(rss.at(-1) ?? 0),
          },
        ];
      });
    },
    machineBusyPercent: (fromMs, toMs) => round(average(within(machine, fromMs, toMs).map((s) => s.busyPercent))),
    stop: () => clearInterval(timer),
  };
}
