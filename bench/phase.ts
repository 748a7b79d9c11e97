// One measured phase: a fresh stack, the status-topic tracker, the load, an
// optional scenario acting on the stack meanwhile (a failover), and what the
// processes cost over the measured window. Stops the stack before it returns.
import { summarizeBusiestProfile, type ProfileSummary } from './cpu-profile';
import { runLoad, type LoadPlan, type LoadResult } from './load';
import type { ProcessSummary } from './sampler';
import type { BenchSession } from './session';
import type { BenchStack } from './stack';
import { startTracker, type Tracker } from './tracker';

export interface PhaseContext {
  stack: BenchStack;
  tracker: Tracker;
}

export interface ScenarioHooks<T> {
  /** Where to send; by default every orchestrator of the stack. */
  targets?: () => readonly string[];
  progressNote?: () => string;
  /** After the load and its drain, before the stack stops (its /metrics can still be read): what to report. */
  finish: (load: LoadResult) => Promise<T>;
}

export interface PhaseSetup<T> {
  orchestrators: number;
  logLevel: string;
  /** Run the orchestrator(s) under the V8 profiler, writing into this directory. */
  profileDir?: string;
  /** Run the gateway workers under the V8 profiler, writing into this directory. */
  gatewayProfileDir?: string;
  /** Set up once the stack runs, just before the load starts. */
  scenario?: (context: PhaseContext) => Promise<ScenarioHooks<T>>;
}

export interface PhaseResult<T = undefined> extends Omit<LoadResult, 'window'> {
  processes: ProcessSummary[];
  machineBusyPercent: number;
  /** The orchestrator's resident memory every 10 s of the measured window. */
  orchestratorRssSeries: Array<{ atS: number; rssMB: number }>;
  profile?: ProfileSummary;
  /** The busiest gateway worker's profile. */
  gatewayProfile?: ProfileSummary;
  scenario?: T;
}

const RSS_SERIES_STEP_MS = 10_000;

/** Node flags that write a V8 CPU profile into `dir` when the process exits. */
const profilerArgs = (dir: string) => ['--cpu-prof', '--cpu-prof-dir', dir];

export async function runPhase<T = undefined>(session: BenchSession, plan: LoadPlan, setup: PhaseSetup<T>): Promise<PhaseResult<T>> {
  const { sampler } = session;
  const stack = await session.startStack({
    orchestrators: setup.orchestrators,
    logLevel: setup.logLevel,
    ...(setup.profileDir ? { orchestratorNodeArgs: profilerArgs(setup.profileDir) } : {}),
    ...(setup.gatewayProfileDir ? { gatewayNodeArgs: profilerArgs(setup.gatewayProfileDir) } : {}),
  });
  let scenario: T | undefined;
  let load: LoadResult;
  try {
    const tracker = await startTracker(stack.kafka, stack.topics.paymentStatus);
    const stopTracker = session.cleanup.defer('status tracker', tracker.stop);
    const hooks = await setup.scenario?.({ stack, tracker });
    const everyOrchestrator = stack.orchestrators.map((orchestrator) => orchestrator.baseUrl);
    load = await runLoad(plan, {
      targets: hooks?.targets ?? (() => everyOrchestrator),
      token: session.token,
      tracker,
      sampler,
      ...(hooks?.progressNote ? { progressNote: hooks.progressNote } : {}),
    });
    scenario = await hooks?.finish(load);
    await stopTracker();
  } finally {
    // SIGTERM: the orchestrator drains and exits, and node writes its CPU profile.
    await stack.release();
  }
  const { window, ...rest } = load;
  // The first sample of every 10 s of the window.
  const stepsSeen = new Set<number>();
  const orchestratorRssSeries = sampler
    .series(setup.orchestrators === 1 ? 'orchestrator' : 'orchestrator-1')
    .filter((s) => s.atMs >= window.fromMs && s.atMs <= window.toMs)
    .filter((s) => {
      const step = Math.floor((s.atMs - window.fromMs) / RSS_SERIES_STEP_MS);
      if (stepsSeen.has(step)) return false;
      stepsSeen.add(step);
      return true;
    })
    .map((s) => ({ atS: Math.round((s.atMs - window.fromMs) / 1000), rssMB: Number(s.rssMB.toFixed(1)) }));
  // performance.now() to the monotonic clock of V8's profile timestamps (process.hrtime), in microseconds.
  const monotonicOffsetUs = Number(process.hrtime.bigint() / 1000n) - performance.now() * 1000;
  const measured = { fromUs: window.fromMs * 1000 + monotonicOffsetUs, toUs: window.toMs * 1000 + monotonicOffsetUs };
  const profile = setup.profileDir ? summarizeBusiestProfile(setup.profileDir, measured) : undefined;
  const gatewayProfile = setup.gatewayProfileDir ? summarizeBusiestProfile(setup.gatewayProfileDir, measured) : undefined;
  return {
    ...rest,
    processes: sampler.summaries(window.fromMs, window.toMs),
    machineBusyPercent: sampler.machineBusyPercent(window.fromMs, window.toMs),
    orchestratorRssSeries,
    ...(profile ? { profile } : {}),
    ...(gatewayProfile ? { gatewayProfile } : {}),
    ...(scenario === undefined ? {} : { scenario }),
  };
}
