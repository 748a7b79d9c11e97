// Reads a V8 .cpuprofile (written by node --cpu-prof when the process exits)
// and ranks functions by self time: where the orchestrator's CPU actually
// went, for whoever optimises it next.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

const ROOT = path.resolve(__dirname, '..');

const callFrame = z.object({ functionName: z.string(), url: z.string(), lineNumber: z.number() });
type CallFrame = z.infer<typeof callFrame>;

const cpuProfile = z.object({
  nodes: z.array(z.object({ id: z.number(), callFrame, children: z.array(z.number()).optional() })),
  /** Microseconds on the monotonic clock: the clock of process.hrtime. */
  startTime: z.number(),
  endTime: z.number(),
  samples: z.array(z.number()),
  /** Microseconds from the previous sample (the first: from startTime). */
  timeDeltas: z.array(z.number()),
});

export interface SelfTime {
  functionName: string;
  /** Project-relative file and line, `package/file:line` inside node_modules, or what V8 calls it. */
  location: string;
  /** The nearest caller in project or package code that spent most of this time (for native and node functions). */
  via: string;
  selfMs: number;
  /** Share of the busy (non-idle) time. */
  percent: number;
}

export interface ProfileSummary {
  file: string;
  /** Whether only the samples of the measured window were counted (start-up and drain left out). */
  measuredWindowOnly: boolean;
  totalMs: number;
  /** Time the process had nothing to run. */
  idleMs: number;
  top: SelfTime[];
  /** Self time by where the code comes from: a package, node itself, the project, GC. */
  byOrigin: Array<{ origin: string; selfMs: number; percent: number }>;
}

/** A window on the monotonic clock, in microseconds (process.hrtime.bigint() / 1000). */
export interface MonotonicWindowUs {
  fromUs: number;
  toUs: number;
}

function locate({ url, lineNumber }: CallFrame): { location: string; origin: string; userCode: boolean } {
  if (url === '') return { location: '', origin: 'V8 / native', userCode: false };
  const file = url.startsWith('file://') ? new URL(url).pathname : url;
  if (file.startsWith('node:')) return { location: `${file}:${lineNumber + 1}`, origin: 'node internals', userCode: false };
  const inModules = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(file);
  if (inModules?.[1]) return { location: `${inModules[1]}/${inModules[2]}:${lineNumber + 1}`, origin: inModules[1], userCode: true };
  const relative = path.relative(ROOT, file);
  const origin = relative.startsWith('..') ? 'other' : `project ${relative.split(path.sep)[0] ?? ''}/`;
  return { location: `${relative}:${lineNumber + 1}`, origin, userCode: true };
}

const share = (ms: number, of: number) => (of > 0 ? Number(((ms / of) * 100).toFixed(1)) : 0);
const round = (ms: number) => Number(ms.toFixed(1));
const nameOf = (frame: CallFrame) => frame.functionName || '(anonymous)';

/**
 * Self time per function (all call sites together), the top `limit` with
 * their main caller, and totals by origin; only the samples inside `window`
 * when given (and any fall in it).
 */
function summarizeProfile(file: string, limit: number, window: MonotonicWindowUs | undefined): ProfileSummary {
  const profile = cpuProfile.parse(JSON.parse(readFileSync(file, 'utf8')));
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const parents = new Map(profile.nodes.flatMap((node) => (node.children ?? []).map((child) => [child, node.id] as const)));
  /** The nearest ancestor in project or package code, as "function location". */
  const callerOf = (nodeId: number): string => {
    for (let id = parents.get(nodeId); id !== undefined; id = parents.get(id)) {
      const frame = frames.get(id);
      if (frame && locate(frame).userCode) return `${nameOf(frame)} ${locate(frame).location}`;
    }
    return '';
  };

  const sampleUs = new Map<number, number>();
  const addSamples = (inWindow: (atUs: number) => boolean) => {
    let atUs = profile.startTime;
    profile.samples.forEach((nodeId, index) => {
      const deltaUs = profile.timeDeltas[index] ?? 0;
      atUs += deltaUs;
      if (inWindow(atUs)) sampleUs.set(nodeId, (sampleUs.get(nodeId) ?? 0) + deltaUs);
    });
  };
  if (window) addSamples((atUs) => atUs >= window.fromUs && atUs <= window.toUs);
  const measuredWindowOnly = sampleUs.size > 0;
  if (!measuredWindowOnly) addSamples(() => true);

  const byFunction = new Map<string, { functionName: string; location: string; selfMs: number; callers: Map<string, number> }>();
  const byOrigin = new Map<string, number>();
  let idleMs = 0;
  let totalMs = 0;
  for (const [nodeId, us] of sampleUs) {
    const frame = frames.get(nodeId);
    if (!frame) continue;
    const ms = us / 1000;
    totalMs += ms;
    if (frame.functionName === '(idle)') {
      idleMs += ms;
      continue;
    }
    const { location, origin } = locate(frame);
    const name = nameOf(frame);
    const key = `${name}|${location}`;
    const entry = byFunction.get(key) ?? { functionName: name, location, selfMs: 0, callers: new Map<string, number>() };
    entry.selfMs += ms;
    const caller = callerOf(nodeId);
    entry.callers.set(caller, (entry.callers.get(caller) ?? 0) + ms);
    byFunction.set(key, entry);
    const originName = ['(garbage collector)', '(program)'].includes(name) ? name : origin;
    byOrigin.set(originName, (byOrigin.get(originName) ?? 0) + ms);
  }
  const busyMs = totalMs - idleMs;
  return {
    file,
    measuredWindowOnly,
    totalMs: round(totalMs),
    idleMs: round(idleMs),
    top: [...byFunction.values()]
      .sort((a, b) => b.selfMs - a.selfMs)
      .slice(0, limit)
      .map(({ callers, ...entry }) => ({
        ...entry,
        via: [...callers].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '',
        selfMs: round(entry.selfMs),
        percent: share(entry.selfMs, busyMs),
      })),
    byOrigin: [...byOrigin].sort((a, b) => b[1] - a[1]).map(([origin, ms]) => ({ origin, selfMs: round(ms), percent: share(ms, busyMs) })),
  };
}

/**
 * The summary of the busiest profile node wrote into a --cpu-prof-dir: the
 * main thread's. (tsx's module hooks run on a worker thread of their own,
 * which writes a profile too, idle nearly all the time.)
 */
export function summarizeBusiestProfile(dir: string, window?: MonotonicWindowUs, limit = 20): ProfileSummary | undefined {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.cpuprofile'))
    .map((name) => summarizeProfile(path.join(dir, name), limit, window))
    .sort((a, b) => b.totalMs - b.idleMs - (a.totalMs - a.idleMs))[0];
}

/** The summary as lines for the terminal. */
export function formatProfile(summary: ProfileSummary): string {
  const lines = [
    `CPU profile ${summary.file}: ${(summary.totalMs / 1000).toFixed(1)} s sampled${summary.measuredWindowOnly ? ' in the measured window' : ''}, ${share(summary.idleMs, summary.totalMs)}% idle`,
    'top self time (share of busy time), with the caller in project or package code that spent most of it:',
    ...summary.top.map(
      (entry, rank) =>
        `${String(rank + 1).padStart(3)}. ${entry.selfMs.toFixed(0).padStart(7)} ms ${entry.percent.toFixed(1).padStart(5)}%  ${entry.functionName}  ${entry.location}${entry.via ? `  ← ${entry.via}` : ''}`,
    ),
    'self time by origin:',
    ...summary.byOrigin.slice(0, 15).map((entry) => `     ${entry.selfMs.toFixed(0).padStart(7)} ms ${entry.percent.toFixed(1).padStart(5)}%  ${entry.origin}`),
  ];
  return lines.join('\n');
}
