// The throughput and soak results: judged against the targets of issue 7,
// and written as markdown.
import type { ProfileSummary } from './cpu-profile';
import type { EchoResult } from './echo';
import type { PhaseResult } from './phase';
import { closingSections, countsText, latencyCells, markdownTable, processesMarkdown, resourceContext, runInfoMarkdown, targetsMarkdown, verdictOf, joinSections, type RunInfo, type TargetCheck } from './report';
import type { ProcessSummary } from './sampler';

export interface ThroughputResults {
  kind: 'throughput' | 'soak';
  run: RunInfo;
  settings: Record<string, string | number>;
  echo?: EchoResult;
  /**
   * The echo again, as an open loop at the rate phase's rate: what a bare Kafka request and reply takes on
   * this machine at that rate, measured in the same run as the payments' latency.
   */
  echoAtRate?: EchoResult;
  phases: PhaseResult[];
  /** Flat-out completed/s ÷ echo round trips/s. */
  ratioToEcho?: number;
  targets: TargetCheck[];
}

const TARGET_COMPLETED_PER_SECOND = 1_000;
const TARGET_SUSTAINED_S = 60;
const LATENCY_RATE = 300;
const TARGET_P95_MS = 50;
const TARGET_P99_MS = 100;
const TARGET_ECHO_RATIO = 0.5;
const TARGET_RSS_MB = 300;
/** Issue 15: CPU per payment against a raw consume-and-produce, measured in the same run. */
const TARGET_ORCHESTRATOR_CPU_TO_ECHO = 3;
const TARGET_GATEWAY_CPU_TO_ECHO = 1.5;
const TARGET_ECHO_RATIO_ISSUE_15 = 0.3;
const TARGET_SOAK_S = 600;
const TARGET_RSS_GROWTH_PERCENT = 10;
/** RSS growth compares the first and the last minute of the measured soak (the warm-up is not measured). */
const RSS_GROWTH_SPAN_S = 60;

const orchestratorOf = (phase: PhaseResult): ProcessSummary | undefined => phase.processes.find((p) => p.name === 'orchestrator');

const cleanRun = (phase: PhaseResult) => phase.errorCount === 0 && phase.failedCount === 0 && phase.lost === 0 && phase.conflictingTerminals === 0;
const outcomeText = (phase: PhaseResult) => `errors ${phase.errorCount}, failed ${phase.failedCount}, lost ${phase.lost}`;

export const flatOutPhase = (results: ThroughputResults) => results.phases.find((phase) => phase.shape.kind === 'flat-out');

/** CPU ms per unit of work: a process' average CPU (100% = one core) over a rate per second. */
const cpuMsPer = (cpuPercent: number, perSecond: number) => (perSecond > 0 ? (cpuPercent / 100) * 1000 / perSecond : undefined);

/**
 * CPU per payment in ms, flat out, and per round trip of the echo responder
 * (one consume and one produce): the orchestrator's, and the gateway
 * workers' together per attempt (with healthy gateways, one attempt per
 * payment). Undefined without a flat-out phase and an echo.
 */
export function cpuPerPayment(results: ThroughputResults): { echoMs: number; orchestratorMs: number; gatewaysMs: number } | undefined {
  const flat = flatOutPhase(results);
  const responder = results.echo?.processes.find((p) => p.name === 'echo-responder');
  const orchestrator = flat && orchestratorOf(flat);
  if (!flat || !results.echo || !responder || !orchestrator) return undefined;
  const gatewaysCpu = flat.processes.filter((p) => p.name.startsWith('gateway-')).reduce((sum, p) => sum + p.cpuAvgPercent, 0);
  const echoMs = cpuMsPer(responder.cpuAvgPercent, results.echo.roundTripsPerSecond);
  const orchestratorMs = cpuMsPer(orchestrator.cpuAvgPercent, flat.completedPerSecond);
  const gatewaysMs = cpuMsPer(gatewaysCpu, flat.completedPerSecond);
  if (echoMs === undefined || orchestratorMs === undefined || gatewaysMs === undefined) return undefined;
  const round = (ms: number) => Number(ms.toFixed(3));
  return { echoMs: round(echoMs), orchestratorMs: round(orchestratorMs), gatewaysMs: round(gatewaysMs) };
}

export function ratioToEcho(results: ThroughputResults): number | undefined {
  const flat = flatOutPhase(results);
  if (!flat || !results.echo || results.echo.roundTripsPerSecond === 0) return undefined;
  return Number((flat.completedPerSecond / results.echo.roundTripsPerSecond).toFixed(3));
}

/** Average RSS over the first and the last minute of the series, and the growth between them. */
export function rssGrowth(phase: PhaseResult): { firstMB: number; lastMB: number; percent: number } | undefined {
  const series = phase.orchestratorRssSeries;
  const endS = series.at(-1)?.atS ?? 0;
  const mean = (points: typeof series) => points.reduce((sum, p) => sum + p.rssMB, 0) / points.length;
  const first = series.filter((p) => p.atS < RSS_GROWTH_SPAN_S);
  const last = series.filter((p) => p.atS > endS - RSS_GROWTH_SPAN_S);
  if (first.length === 0 || last.length === 0 || endS < 2 * RSS_GROWTH_SPAN_S) return undefined;
  const [firstMB, lastMB] = [mean(first), mean(last)];
  return { firstMB: Number(firstMB.toFixed(1)), lastMB: Number(lastMB.toFixed(1)), percent: Number((((lastMB - firstMB) / firstMB) * 100).toFixed(1)) };
}

function throughputTargets(results: ThroughputResults): TargetCheck[] {
  const flat = flatOutPhase(results);
  const latencyPhase = results.phases.find((phase) => phase.shape.kind === 'rate' && phase.shape.perSecond === LATENCY_RATE);
  const ratio = ratioToEcho(results);
  const missing = (what: string): Pick<TargetCheck, 'measured' | 'verdict' | 'note'> => ({ measured: '–', verdict: 'not judged', note: `this run had no ${what}` });
  const shortRun = (phase: PhaseResult) => (phase.durationS < TARGET_SUSTAINED_S ? `measured for ${phase.durationS} s only, not the ${TARGET_SUSTAINED_S} s of the target` : undefined);

  const throughput: TargetCheck = { target: `≥ ${TARGET_COMPLETED_PER_SECOND} payments/s completed end to end, flat out, for ${TARGET_SUSTAINED_S} s, zero errors, zero lost`, ...missing('flat-out phase') };
  if (flat) {
    const ok = flat.completedPerSecond >= TARGET_COMPLETED_PER_SECOND && cleanRun(flat);
    const gap = ok ? undefined : `${flat.completedPerSecond >= TARGET_COMPLETED_PER_SECOND ? 'fast enough, but not clean' : `short by ${Math.round(TARGET_COMPLETED_PER_SECOND - flat.completedPerSecond)}/s`}; ${resourceContext(flat)}`;
    const note = [shortRun(flat), gap].filter(Boolean).join('. ');
    Object.assign(throughput, { measured: `${flat.completedPerSecond}/s over ${flat.durationS} s; ${outcomeText(flat)}`, verdict: shortRun(flat) ? 'not judged' : verdictOf(ok), note });
  }

  const latency: TargetCheck = { target: `at ${LATENCY_RATE} payments/s: p95 ≤ ${TARGET_P95_MS} ms and p99 ≤ ${TARGET_P99_MS} ms (POST sent → terminal event read)`, ...missing(`${LATENCY_RATE}/s phase`) };
  if (latencyPhase) {
    const { p95, p99 } = latencyPhase.endToEndMs;
    const ok = p95 <= TARGET_P95_MS && p99 <= TARGET_P99_MS && latencyPhase.unsent === 0;
    const note = [
      shortRun(latencyPhase),
      latencyPhase.unsent > 0 ? `${latencyPhase.unsent} payments could not be sent on time` : undefined,
      ok ? undefined : `p95 over by ${Math.max(0, p95 - TARGET_P95_MS).toFixed(1)} ms, p99 over by ${Math.max(0, p99 - TARGET_P99_MS).toFixed(1)} ms; ${resourceContext(latencyPhase)}`,
    ]
      .filter(Boolean)
      .join('. ');
    const floor = results.echoAtRate?.perSecond === LATENCY_RATE ? results.echoAtRate : undefined;
    const echoNote = floor ? `The raw echo at ${LATENCY_RATE}/s in this run: p95 ${floor.latencyMs.p95} ms, p99 ${floor.latencyMs.p99} ms, machine ${floor.machineBusyPercent}% busy` : undefined;
    Object.assign(latency, { measured: `p95 ${p95} ms, p99 ${p99} ms; ${outcomeText(latencyPhase)}`, verdict: verdictOf(ok), note: [note, echoNote].filter(Boolean).join('. ') });
  }

  const echoRatio: TargetCheck = { target: `orchestrator completed/s ≥ ${TARGET_ECHO_RATIO * 100}% of the raw echo's round trips/s`, ...missing('flat-out phase and echo baseline') };
  if (ratio !== undefined && flat && results.echo) {
    Object.assign(echoRatio, {
      measured: `${(ratio * 100).toFixed(1)}% (${flat.completedPerSecond}/s ÷ ${results.echo.roundTripsPerSecond}/s)`,
      verdict: verdictOf(ratio >= TARGET_ECHO_RATIO),
      note: ratio >= TARGET_ECHO_RATIO ? '' : `short by ${((TARGET_ECHO_RATIO - ratio) * 100).toFixed(1)} points; ${resourceContext(flat)}`,
    });
  }

  const memory: TargetCheck = { target: `orchestrator RSS ≤ ${TARGET_RSS_MB} MB at full load`, ...missing('flat-out phase') };
  const flatOrchestrator = flat && orchestratorOf(flat);
  if (flatOrchestrator) {
    Object.assign(memory, { measured: `${flatOrchestrator.rssPeakMB} MB peak`, verdict: verdictOf(flatOrchestrator.rssPeakMB <= TARGET_RSS_MB), note: '' });
  }
  const cpu = cpuPerPayment(results);
  const cpuTarget = (who: string, limit: number, ms: ((c: NonNullable<typeof cpu>) => number)): TargetCheck => {
    const check: TargetCheck = { target: `${who} ≤ ${limit} × the echo responder's CPU per round trip (issue 15)`, ...missing('flat-out phase and echo baseline') };
    if (!cpu) return check;
    const ratio = ms(cpu) / cpu.echoMs;
    return { ...check, measured: `${ratio.toFixed(2)} × (${ms(cpu)} ms ÷ ${cpu.echoMs} ms)`, verdict: verdictOf(ratio <= limit), note: ratio <= limit ? '' : `${(ms(cpu) - limit * cpu.echoMs).toFixed(3)} ms over` };
  };
  const orchestratorCpu = cpuTarget('orchestrator CPU per payment, flat out,', TARGET_ORCHESTRATOR_CPU_TO_ECHO, (c) => c.orchestratorMs);
  const gatewayCpu = cpuTarget('gateway workers\' CPU per attempt (all three together, one attempt per payment), flat out,', TARGET_GATEWAY_CPU_TO_ECHO, (c) => c.gatewaysMs);
  const echoRatio15: TargetCheck = { target: `flat-out completed/s ≥ ${TARGET_ECHO_RATIO_ISSUE_15 * 100}% of the echo's round trips/s, zero errors, zero lost (issue 15)`, ...missing('flat-out phase and echo baseline') };
  if (ratio !== undefined && flat) {
    const ok = ratio >= TARGET_ECHO_RATIO_ISSUE_15 && cleanRun(flat);
    Object.assign(echoRatio15, { measured: `${(ratio * 100).toFixed(1)}%; ${outcomeText(flat)}`, verdict: verdictOf(ok), note: ok ? '' : resourceContext(flat) });
  }
  return [throughput, latency, echoRatio, memory, orchestratorCpu, gatewayCpu, echoRatio15];
}

function soakTargets(results: ThroughputResults): TargetCheck[] {
  const soak = results.phases[0];
  if (!soak) return [];
  const growth = rssGrowth(soak);
  const orchestrator = orchestratorOf(soak);
  const shortRun = soak.durationS < TARGET_SOAK_S ? `measured for ${soak.durationS} s only, not the ${TARGET_SOAK_S} s of the target` : '';
  return [
    {
      target: `orchestrator RSS flat (≤ ${TARGET_RSS_GROWTH_PERCENT}% growth after warm-up) over ${TARGET_SOAK_S / 60} minutes at ${LATENCY_RATE}/s`,
      measured: growth ? `${growth.firstMB} MB (first minute) → ${growth.lastMB} MB (last minute): ${growth.percent}%` : '–',
      verdict: shortRun || !growth ? 'not judged' : verdictOf(growth.percent <= TARGET_RSS_GROWTH_PERCENT),
      note: shortRun || (growth ? '' : 'the run is too short to compare a first and a last minute'),
    },
    {
      target: `orchestrator RSS ≤ ${TARGET_RSS_MB} MB`,
      measured: orchestrator ? `${orchestrator.rssPeakMB} MB peak` : '–',
      verdict: orchestrator ? verdictOf(orchestrator.rssPeakMB <= TARGET_RSS_MB) : 'not judged',
    },
    { target: 'zero errors and zero lost payments', measured: outcomeText(soak), verdict: verdictOf(cleanRun(soak)) },
  ];
}

export const summarizeTargets = (results: ThroughputResults) => (results.kind === 'soak' ? soakTargets(results) : throughputTargets(results));

const loadText = (phase: PhaseResult) => (phase.shape.kind === 'flat-out' ? `closed loop, ${phase.shape.concurrency} in flight` : `open loop, ${phase.shape.perSecond}/s`);

export function profileMarkdown(profile: ProfileSummary): string {
  return [
    `${(profile.totalMs / 1000).toFixed(1)} s sampled${profile.measuredWindowOnly ? ' in the measured window' : ' (the whole process life: start-up included)'}, ${((profile.idleMs / profile.totalMs) * 100).toFixed(1)}% idle. Self time as a share of the busy time; "called from" is the caller in project or package code that spent most of it. Line numbers are of the code as tsx compiled it.`,
    '',
    markdownTable(
      ['#', 'function', 'where', 'called from', 'self ms', '%'],
      profile.top.map((entry, rank) => [rank + 1, `\`${entry.functionName}\``, entry.location ? `\`${entry.location}\`` : '', entry.via ? `\`${entry.via}\`` : '', entry.selfMs.toFixed(0), entry.percent]),
    ),
    '',
    'By origin:',
    '',
    markdownTable(['origin', 'self ms', '%'], profile.byOrigin.slice(0, 15).map((entry) => [entry.origin, entry.selfMs.toFixed(0), entry.percent])),
  ].join('\n');
}

function cpuLine(results: ThroughputResults): string {
  const cpu = cpuPerPayment(results);
  if (!cpu) return '';
  return `CPU per payment, flat out: orchestrator **${cpu.orchestratorMs} ms**, gateway workers together **${cpu.gatewaysMs} ms**; echo responder per round trip **${cpu.echoMs} ms** (ratios ${(cpu.orchestratorMs / cpu.echoMs).toFixed(2)} × and ${(cpu.gatewaysMs / cpu.echoMs).toFixed(2)} ×).`;
}

const echoLoadText = (run: EchoResult) => (run.perSecond === undefined ? `closed loop, ${run.concurrency} in flight` : `open loop, ${run.perSecond}/s`);

export function throughputMarkdown(results: ThroughputResults): string {
  const { echo, phases } = results;
  const ratio = ratioToEcho(results);
  const sections = [
    `# ${results.kind === 'soak' ? 'Soak' : 'Throughput'} benchmark`,
    runInfoMarkdown(results.run),
    '## Against the targets',
    targetsMarkdown(results.targets),
    '## Results',
    'End-to-end latency runs from sending the POST to reading the payment\'s terminal event on the status topic; "accept" is the POST\'s own answer time. Rates are over the measured window, after the warm-up.',
    markdownTable(
      ['phase', 'load', 'accepted/s', 'completed/s', 'e2e p50 ms', 'p95', 'p99', 'max', 'accept p95 ms', 'errors', 'failed', 'lost', 'orchestrator CPU avg / peak %', 'orchestrator RSS avg / peak MB', 'machine busy %'],
      phases.map((phase) => {
        const orchestrator = orchestratorOf(phase);
        return [
          phase.name,
          loadText(phase),
          phase.acceptedPerSecond,
          phase.completedPerSecond,
          ...latencyCells(phase.endToEndMs),
          phase.acceptMs.p95,
          phase.errorCount,
          phase.failedCount,
          phase.lost,
          orchestrator ? `${orchestrator.cpuAvgPercent} / ${orchestrator.cpuPeakPercent}` : '–',
          orchestrator ? `${orchestrator.rssAvgMB} / ${orchestrator.rssPeakMB}` : '–',
          phase.machineBusyPercent,
        ];
      }),
    ),
  ];
  const echoes = [echo, results.echoAtRate].filter((run): run is EchoResult => run !== undefined);
  if (echoes.length > 0) {
    sections.push(
      '## Echo baseline (raw kafkajs request/reply on the same broker)',
      markdownTable(
        ['load', 'round trips/s', 'p50 ms', 'p95', 'p99', 'max', 'errors', 'machine busy %'],
        echoes.map((run) => [echoLoadText(run), run.roundTripsPerSecond, ...latencyCells(run.latencyMs), Object.values(run.errors).reduce((sum, n) => sum + n, 0), run.machineBusyPercent]),
      ),
      ratio === undefined ? '' : `Flat-out orchestrator completed/s ÷ echo round trips/s: **${(ratio * 100).toFixed(1)}%**.`,
      cpuLine(results),
      ...echoes.flatMap((run) => [`### Processes during the echo, ${echoLoadText(run)}`, processesMarkdown(run.processes)]),
    );
  }
  for (const phase of phases) {
    sections.push(`## ${phase.name}: processes (measured window)`, processesMarkdown(phase.processes));
    const problems = [
      phase.errorCount > 0 ? `- errors: ${countsText(phase.errors)}` : '',
      phase.failedCount > 0 ? `- failed payments by reason: ${countsText(phase.failed)}` : '',
      phase.lost > 0 ? `- lost (not terminal ${results.settings.drainTimeoutS} s after the last send), e.g.: ${phase.lostExamples.join(', ')}` : '',
      phase.unsent > 0 ? `- unsent (more than ${results.settings.maxConnections} requests open at a send time): ${phase.unsent}` : '',
      phase.conflictingTerminals > 0 ? `- payments with two different terminal statuses: ${phase.conflictingTerminals}` : '',
      phase.retries > 0 ? `- retried requests: ${phase.retries}` : '',
    ].filter(Boolean);
    if (problems.length > 0) sections.push(problems.join('\n'));
    if (results.kind === 'soak') {
      sections.push('### Orchestrator RSS every 10 s', markdownTable(['s', 'RSS MB'], phase.orchestratorRssSeries.map((point) => [point.atS, point.rssMB])));
    }
    if (phase.profile) sections.push(`### ${phase.name}: orchestrator CPU profile`, profileMarkdown(phase.profile));
  }
  return joinSections([...sections, ...closingSections(results.settings)]);
}
