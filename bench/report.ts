// What every benchmark result file says besides its numbers (when, where,
// with what, by which command), the markdown pieces they share, and writing
// the JSON and markdown pair.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import type { ProcessSummary } from './sampler';
import type { LatencySummary } from './stats';

const ROOT = path.resolve(__dirname, '..');

export interface RunInfo {
  date: string;
  /** Free text from --label, e.g. that the machine was shared. */
  label?: string;
  /** The exact command, to run it again. */
  command: string;
  git: { commit: string; uncommittedChanges: boolean };
  machine: { cores: number; cpuModel: string; memoryGiB: number; kernel: string; loadAverageAtStart: number[] };
  versions: { node: string; kafka: string; redis: string; kafkajs: string; undici: string; ioredis: string };
}

const packageVersion = (name: string): string => {
  const manifest = JSON.parse(readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version?: string };
  return manifest.version ?? 'unknown';
};

const git = (...args: string[]): string | undefined => {
  try {
    return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
};

async function redisVersion(url: string): Promise<string> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    return /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? 'unknown';
  } finally {
    redis.disconnect();
  }
}

/** An argument as a shell needs it typed. */
const shellQuoted = (arg: string) => (/^[\w./:=@%+-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`);

/** `npm run <script> -- <args>`, quoted so it can be pasted into a shell. */
export const npmCommand = (script: string, args: readonly string[]) => `npm run ${script}${args.length > 0 ? ` -- ${args.map(shellQuoted).join(' ')}` : ''}`;

export async function collectRunInfo(options: { command: string; label: string | undefined; kafka: string; redisUrl: string }): Promise<RunInfo> {
  return {
    date: new Date().toISOString(),
    ...(options.label ? { label: options.label } : {}),
    command: options.command,
    git: { commit: git('rev-parse', '--short', 'HEAD') ?? 'unknown', uncommittedChanges: (git('status', '--porcelain') ?? '') !== '' },
    machine: {
      cores: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      kernel: release(),
      loadAverageAtStart: loadavg().map((load) => Number(load.toFixed(2))),
    },
    versions: {
      node: process.version,
      kafka: options.kafka,
      redis: await redisVersion(options.redisUrl),
      kafkajs: packageVersion('kafkajs'),
      undici: packageVersion('undici'),
      ioredis: packageVersion('ioredis'),
    },
  };
}

export function markdownTable(headers: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number>>): string {
  const line = (cells: ReadonlyArray<string | number>) => `| ${cells.join(' | ')} |`;
  return [line(headers), line(headers.map(() => '---')), ...rows.map(line)].join('\n');
}

export function runInfoMarkdown(info: RunInfo): string {
  const { machine, versions } = info;
  return [
    ...(info.label ? [`> **${info.label}**`, ''] : []),
    `- Date: ${info.date}`,
    `- Command: \`${info.command}\``,
    `- Code: commit ${info.git.commit}${info.git.uncommittedChanges ? ' with uncommitted changes in the working tree' : ''}`,
    `- Machine: ${machine.cores} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB, Linux ${machine.kernel}; load average at start ${machine.loadAverageAtStart.join(' / ')}`,
    `- Versions: Node ${versions.node}, ${versions.kafka}, Redis ${versions.redis}, kafkajs ${versions.kafkajs}, undici ${versions.undici}, ioredis ${versions.ioredis}`,
  ].join('\n');
}

export type Verdict = 'met' | 'not met' | 'not judged';

export interface TargetCheck {
  target: string;
  measured: string;
  verdict: Verdict;
  /** The gap and its cause when not met; why when not judged. */
  note?: string;
}

export const verdictOf = (ok: boolean): Verdict => (ok ? 'met' : 'not met');

export const targetsMarkdown = (targets: readonly TargetCheck[]) =>
  markdownTable(
    ['target', 'measured', 'verdict', 'note'],
    targets.map((t) => [t.target, t.measured, t.verdict === 'met' ? 'met' : `**${t.verdict}**`, t.note ?? '']),
  );

/** What the processes were doing over a phase, to point at the cause of a missed target. */
export function resourceContext(phase: { processes: readonly ProcessSummary[]; machineBusyPercent: number }): string {
  const orchestrators = phase.processes.filter((p) => p.name.startsWith('orchestrator'));
  const busiest = [...phase.processes].sort((a, b) => b.cpuAvgPercent - a.cpuAvgPercent).slice(0, 3);
  return [
    ...orchestrators.map((p) => `${p.name} CPU ${p.cpuAvgPercent}% avg, ${p.cpuPeakPercent}% peak (100% = one core)`),
    `machine ${phase.machineBusyPercent}% busy`,
    `busiest: ${busiest.map((p) => `${p.name} ${p.cpuAvgPercent}%`).join(', ')}`,
  ].join('; ');
}

export const latencyCells = (latency: LatencySummary) => [latency.p50, latency.p95, latency.p99, latency.max];

export const processesMarkdown = (processes: readonly ProcessSummary[]) =>
  markdownTable(
    ['process', 'CPU avg %', 'CPU peak %', 'RSS avg MB', 'RSS peak MB'],
    processes.map((p) => [p.name, p.cpuAvgPercent, p.cpuPeakPercent, p.rssAvgMB, p.rssPeakMB]),
  );

/** Counts by kind as "kind: n; kind: n", or "none". */
export const countsText = (counts: Record<string, number>) =>
  Object.keys(counts).length === 0
    ? 'none'
    : Object.entries(counts)
        .map(([kind, count]) => `${kind}: ${count}`)
        .join('; ');

/** Writes `<out>.json` and `<out>.md`; returns their paths. */
export function writeResults(out: string, json: unknown, markdown: string): string[] {
  const base = path.resolve(out.replace(/\.(json|md)$/, ''));
  mkdirSync(path.dirname(base), { recursive: true });
  writeFileSync(`${base}.json`, `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(`${base}.md`, markdown.endsWith('\n') ? markdown : `${markdown}\n`);
  return [`${base}.json`, `${base}.md`];
}

/** The end of every results file: the run's settings and where the harness is explained. */
export const closingSections = (settings: Record<string, unknown>): string[] => [
  '## Settings',
  Object.entries(settings)
    .map(([name, value]) => `- ${name}: ${String(value)}`)
    .join('\n'),
  'How the harness works and what each file here is: [README.md](README.md).',
];

/** Markdown sections separated by blank lines, the empty ones left out. */
export const joinSections = (sections: readonly string[]): string => sections.filter((section) => section !== '').join('\n\n');
