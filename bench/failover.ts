// `npm run bench:failover`: failover and recovery under load. Scenarios at
// 300 payments/s from a cold start, each on a fresh stack with three sandbox
// gateways: one gateway starts hanging; one gateway returns retryable
// errors; one of two orchestrator instances is SIGKILLed. Then overload:
// about twice the flat-out capacity for 30 s, every gateway healthy.
// Usage: see USAGE.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { runBench } from './cleanup';
import { formatProfile } from './cpu-profile';
import { gatewayFault, killOrchestrator, overload, type ScenarioFindings, type ScenarioName, type TrafficFindings } from './failover-scenarios';
import type { LoadPlan } from './load';
import { paymentBody, routesOf } from './payments';
import { runPhase, type PhaseContext, type PhaseResult } from './phase';
import { closingSections, countsText, markdownTable, npmCommand, processesMarkdown, resourceContext, runInfoMarkdown, targetsMarkdown, verdictOf, writeResults, joinSections, type RunInfo, type TargetCheck } from './report';
import { openSession } from './session';

const USAGE = `usage: npm run bench:failover [-- options]

  --scenarios LIST      which of hang,error,kill,overload to run, in that order (all four)
  --rate N              payments/s, open loop, of hang, error and kill (300)
  --overload-rate N     payments/s offered in the overload scenario (twice the last flat-out
                        completed/s in docs/benchmarks/throughput.json, or 800 without it)
  --overload-duration S measured seconds of the overload scenario (30)
  --overload-retries N  hang, error, kill: how many times a client sends a payment again after a
                        503 overloaded (after Retry-After, same Idempotency-Key) (5); overload: never
  --warmup S            unmeasured seconds before the measured window (5)
  --fault-at S          seconds into the measured window when the fault starts (10)
  --duration S          measured seconds of each scenario (40)
  --gateway ID          the gateway that hangs or errors (the one with the highest weight)
  --log-level LEVEL     the services' LOG_LEVEL (info)
  --max-connections N   most requests open at once per orchestrator; a send beyond it is counted unsent (256)
  --out PATH            where to write the results, without extension (docs/benchmarks/failover)
  --label TEXT          a note printed at the top of the results
  --keep-logs           keep the services' logs (kept anyway when the run fails)
  --profile             run the orchestrator(s) with --cpu-prof; print the top self-time functions per scenario
  --help`;

const SCENARIOS: readonly ScenarioName[] = ['hang', 'error', 'kill', 'overload'];
const THROUGHPUT_RESULTS = path.resolve(__dirname, '../docs/benchmarks/throughput.json');
const DEFAULT_OVERLOAD_RATE = 800;
/** The excess must be refused within this, p99 of the 503 answers (issue 11). */
const REFUSAL_TARGET_MS = 50;
/** How long a client keeps retrying a payment with the same key after no answer (the kill scenario). */
const CLIENT_RETRY_MS = 30_000;

interface ScenarioResult {
  name: ScenarioName;
  description: string;
  phase: PhaseResult<ScenarioFindings>;
}

interface FailoverResults {
  kind: 'failover';
  run: RunInfo;
  settings: Record<string, string | number>;
  scenarios: ScenarioResult[];
  targets: TargetCheck[];
}

function parseOptions() {
  const { values } = parseArgs({
    options: {
      scenarios: { type: 'string', default: SCENARIOS.join(',') },
      rate: { type: 'string', default: '300' },
      'overload-rate': { type: 'string' },
      'overload-duration': { type: 'string', default: '30' },
      'overload-retries': { type: 'string', default: '5' },
      warmup: { type: 'string', default: '5' },
      'fault-at': { type: 'string', default: '10' },
      duration: { type: 'string', default: '40' },
      gateway: { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      'max-connections': { type: 'string', default: '256' },
      out: { type: 'string', default: 'docs/benchmarks/failover' },
      label: { type: 'string' },
      'keep-logs': { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  const number = (name: string, value: string) => {
    const parsed = Number(value);
    if (!Number.isFinite(parsed) || parsed < 0) throw new Error(`--${name} must be a number ≥ 0, not ${value}\n${USAGE}`);
    return parsed;
  };
  const scenarios = values.scenarios.split(',').map((name) => name.trim());
  const unknown = scenarios.filter((name) => !SCENARIOS.includes(name as ScenarioName));
  if (unknown.length > 0) throw new Error(`unknown scenario(s) ${unknown.join(', ')}\n${USAGE}`);
  const options = {
    help: values.help,
    scenarios: SCENARIOS.filter((name) => scenarios.includes(name)),
    rate: number('rate', values.rate),
    overloadRate: values['overload-rate'] === undefined ? undefined : number('overload-rate', values['overload-rate']),
    overloadDurationS: number('overload-duration', values['overload-duration']),
    overloadRetries: number('overload-retries', values['overload-retries']),
    warmupS: number('warmup', values.warmup),
    faultAtS: number('fault-at', values['fault-at']),
    durationS: number('duration', values.duration),
    gateway: values.gateway,
    logLevel: values['log-level'],
    maxConnections: number('max-connections', values['max-connections']),
    out: values.out,
    label: values.label,
    keepLogs: values['keep-logs'],
    profile: values.profile,
  };
  if (options.faultAtS >= options.durationS) throw new Error(`--fault-at must fall inside --duration\n${USAGE}`);
  return options;
}

/** The overload scenario's rate: the flag, else twice the last flat-out figure measured here, else 800/s. */
function overloadRate(flag: number | undefined): { perSecond: number; source: string } {
  if (flag !== undefined) return { perSecond: flag, source: '--overload-rate' };
  if (existsSync(THROUGHPUT_RESULTS)) {
    const results = JSON.parse(readFileSync(THROUGHPUT_RESULTS, 'utf8')) as { run?: { date?: string }; phases?: Array<{ shape?: { kind?: string }; completedPerSecond?: number }> };
    const flatOut = results.phases?.find((phase) => phase.shape?.kind === 'flat-out')?.completedPerSecond;
    if (flatOut !== undefined && flatOut > 0) return { perSecond: Math.round(2 * flatOut), source: `2 × the flat-out ${flatOut}/s of docs/benchmarks/throughput.json (${results.run?.date ?? 'undated'})` };
  }
  return { perSecond: DEFAULT_OVERLOAD_RATE, source: `${DEFAULT_OVERLOAD_RATE}/s (no flat-out figure in docs/benchmarks/throughput.json)` };
}

const healthyText = (traffic: TrafficFindings) =>
  `healthy gateways: ${traffic.healthy.timeouts} timeouts, ${traffic.healthy.failedOverFrom} failed over from, ${traffic.healthy.cancels} cancels, ${traffic.healthy.compensations} compensations`;

const overloadedText = (phase: PhaseResult<ScenarioFindings>) =>
  `${phase.overloaded.answers} answers 503 overloaded (${phase.overloaded.acceptedAfterRefusal} payments accepted on a retry, ${phase.overloaded.refusedFinally} given up)`;

function scenarioTargets(scenario: ScenarioResult): TargetCheck[] {
  const { phase, name } = scenario;
  const findings = phase.scenario;
  if (!findings) return [];
  const { traffic } = findings;
  const clean = `errors ${phase.errorCount}, lost ${phase.lost}`;
  const check = (target: string, measured: string, ok: boolean, gap: string): TargetCheck => ({
    target,
    measured,
    verdict: verdictOf(ok),
    ...(ok ? {} : { note: [gap, resourceContext(phase)].filter(Boolean).join('; ') }),
  });
  const failedCheck = check(
    `${name}: 0 failed payments`,
    `${traffic.failedPayments} ended FAILURE${traffic.failedPayments > 0 ? ` (${countsText(traffic.failedByReason)})` : ''}; ${clean}; ${overloadedText(phase)}`,
    traffic.failedPayments === 0 && phase.lost === 0,
    phase.lost > 0 ? `${phase.lost} accepted payments never terminal` : '',
  );
  if (findings.kind === 'overload') {
    const p99 = phase.endToEndMs.p99;
    const refusal = phase.overloaded.answerMs;
    return [
      failedCheck,
      check(
        `overload: accepted payments' p99 within the gateway timeout (${findings.timeoutMs} ms)`,
        `offered ${findings.offeredPerSecond}/s, accepted ${phase.acceptedPerSecond}/s, completed ${phase.completedPerSecond}/s; e2e p50 ${phase.endToEndMs.p50}, p99 ${p99}, max ${phase.endToEndMs.max} ms`,
        p99 <= findings.timeoutMs && phase.endToEndMs.count > 0,
        `p99 over the timeout by ${Math.round(p99 - findings.timeoutMs)} ms`,
      ),
      check(
        `overload: the excess refused (503 overloaded) within ${REFUSAL_TARGET_MS} ms`,
        `${phase.overloaded.answers} refused; answer p50 ${refusal.p50}, p99 ${refusal.p99}, max ${refusal.max} ms`,
        refusal.count > 0 && refusal.p99 <= REFUSAL_TARGET_MS,
        refusal.count === 0 ? 'nothing was refused' : `p99 over by ${Math.round(refusal.p99 - REFUSAL_TARGET_MS)} ms`,
      ),
    ];
  }
  const compensations = check(
    `${name}: 0 compensations on healthy gateways`,
    `${traffic.compensations} compensations on any gateway; ${healthyText(traffic)}`,
    traffic.compensations === 0,
    `${traffic.compensations} compensate commands (${traffic.gateways.filter((g) => g.compensations > 0).map((g) => `${g.gatewayId} ${g.compensations}`).join(', ')})`,
  );
  if (findings.kind === 'kill') {
    return [
      failedCheck,
      compensations,
      check(
        'kill: every accepted payment reaches a terminal state',
        `${findings.orphans} orphans, the last terminal ${findings.lastOrphanCompletedAfterMs ?? '–'} ms after the SIGKILL; ${clean}`,
        phase.lost === 0 && findings.orphansNeverTerminal === 0,
        `${phase.lost} accepted payments never terminal (${findings.orphansNeverTerminal} of them orphans)`,
      ),
    ];
  }
  if (findings.kind === 'gateway-fault' && name === 'hang') {
    const breakerBoundMs = findings.timeoutMs + 2_000;
    return [
      failedCheck,
      compensations,
      check(
        `hang: every accepted payment terminal within the gateway's timeout + 1 s (${findings.boundMs} ms, 202 → terminal)`,
        `worst ${findings.worstAcceptedToTerminalMs} ms; ${findings.overBound} over the bound; ${clean}`,
        findings.overBound === 0 && phase.lost === 0,
        `${findings.overBound} payments over the bound, the worst by ${findings.worstAcceptedToTerminalMs - findings.boundMs} ms (${phase.lost} never terminal); median payment ${phase.endToEndMs.p50} ms`,
      ),
      check(
        `hang: breaker open within the timeout + 2 s of the hang (${breakerBoundMs} ms)`,
        findings.breakerOpenAfterMs === undefined ? 'never opened' : `${findings.breakerOpenAfterMs} ms`,
        findings.breakerOpenAfterMs !== undefined && findings.breakerOpenAfterMs <= breakerBoundMs,
        findings.breakerOpenAfterMs === undefined ? 'the breaker never opened' : `${findings.breakerOpenAfterMs - breakerBoundMs} ms late`,
      ),
    ];
  }
  return [failedCheck, compensations];
}

function trafficMarkdown(traffic: TrafficFindings): string {
  return [
    markdownTable(
      ['gateway', 'state', 'attempts', 'timeouts', 'failed over after timeout', 'after error', 'failed over from (topic)', 'cancels', 'compensations', 'late successes'],
      traffic.gateways.map((g) => [g.gatewayId, g.faulted ? 'faulted' : 'healthy', g.attempts, g.timeouts, g.failoversAfterTimeout, g.failoversAfterFailure, g.failedOverFrom, g.cancels, g.compensations, g.lateSuccesses]),
    ),
    `On the healthy gateways (every timeout, failover, cancel or compensation there is the orchestrator mistaking its own delay for the gateway's): ${traffic.healthy.timeouts} timeouts, ${traffic.healthy.failedOverFrom} failovers, ${traffic.healthy.cancels} cancels, ${traffic.healthy.compensations} compensations. Refused 503 overloaded (orchestrator counter): ${traffic.refusedOverloaded}. Failed payments, warm-up included: ${traffic.failedPayments}${traffic.failedPayments > 0 ? ` (${countsText(traffic.failedByReason)})` : ''}.${traffic.note ? ` Counters: ${traffic.note}.` : ''}`,
  ].join('\n\n');
}

function findingsMarkdown(findings: ScenarioFindings | undefined): string {
  if (!findings) return '';
  if (findings.kind === 'overload') {
    return `Offered ${findings.offeredPerSecond}/s (${findings.rateSource}); a 503 overloaded is not retried.`;
  }
  if (findings.kind === 'kill') {
    return markdownTable(
      ['killed', 'orphans (pending at the kill)', 'last orphan terminal after', 'orphans never terminal', 'worst e2e ms'],
      [[findings.killed, findings.orphans, findings.lastOrphanCompletedAfterMs === undefined ? '–' : `${findings.lastOrphanCompletedAfterMs} ms`, findings.orphansNeverTerminal, findings.worstEndToEndMs]],
    );
  }
  return markdownTable(
    ['gateway', 'mode', 'timeout ms', 'fault → breaker open', 'failed over after timeout', 'failed over after error', 'settled by it after the fault', 'worst e2e ms', 'worst 202 → terminal ms', `over ${findings.boundMs} ms`],
    [
      [
        findings.gatewayId,
        findings.mode,
        findings.timeoutMs,
        findings.breakerOpenAfterMs === undefined ? 'never opened' : `${findings.breakerOpenAfterMs} ms`,
        findings.failedOverAfterTimeout,
        findings.failedOverAfterError,
        findings.settledByFailingGatewayAfterFault,
        findings.worstEndToEndMs,
        findings.worstAcceptedToTerminalMs,
        findings.overBound,
      ],
    ],
  );
}

function failoverMarkdown(results: FailoverResults): string {
  const sections = [
    '# Failover benchmark',
    runInfoMarkdown(results.run),
    '## Against the targets',
    targetsMarkdown(results.targets),
  ];
  for (const { name, description, phase } of results.scenarios) {
    const refusal = phase.overloaded.answerMs;
    sections.push(
      `## ${name}: ${description}`,
      findingsMarkdown(phase.scenario),
      phase.scenario ? trafficMarkdown(phase.scenario.traffic) : '',
      markdownTable(
        ['offered/s', 'accepted/s', 'completed/s', 'e2e p50 ms', 'p95', 'p99', 'max', '503 overloaded', '503 answer p50 / p99 ms', 'accepted on a retry', 'given up', 'errors', 'failed', 'lost', 'unsent'],
        [
          [
            phase.shape.kind === 'rate' ? phase.shape.perSecond : '–',
            phase.acceptedPerSecond,
            phase.completedPerSecond,
            phase.endToEndMs.p50,
            phase.endToEndMs.p95,
            phase.endToEndMs.p99,
            phase.endToEndMs.max,
            phase.overloaded.answers,
            refusal.count > 0 ? `${refusal.p50} / ${refusal.p99}` : '–',
            phase.overloaded.acceptedAfterRefusal,
            phase.overloaded.refusedFinally,
            phase.errorCount,
            phase.failedCount,
            phase.lost,
            phase.unsent,
          ],
        ],
      ),
      [phase.errorCount > 0 ? `- errors: ${countsText(phase.errors)}` : '', phase.failedCount > 0 ? `- failed by reason: ${countsText(phase.failed)}` : '', phase.lost > 0 ? `- lost, e.g.: ${phase.lostExamples.join(', ')}` : '']
        .filter(Boolean)
        .join('\n'),
      processesMarkdown(phase.processes),
    );
  }
  return joinSections([...sections, ...closingSections(results.settings)]);
}

runBench(async (cleanup) => {
  const options = parseOptions();
  if (options.help) {
    console.log(USAGE);
    return;
  }
  const session = await openSession({ cleanup, command: npmCommand('bench:failover', process.argv.slice(2)), label: options.label, keepLogs: options.keepLogs });
  // Deposits only: a withdrawal whose gateway hangs is, by design, cancel-first and then waits for a person (review), never terminal on its own.
  const routes = routesOf(session.rules, ['deposit'], 2);
  const failing = options.gateway ?? [...session.rules].sort((a, b) => b.weight - a.weight)[0]?.gatewayId ?? '';
  const timing = { faultAfterMs: (options.warmupS + options.faultAtS) * 1000 };
  const drainTimeoutS = Math.max(...session.rules.map((rule) => rule.timeoutMs)) / 1000 + 30;
  const offered = overloadRate(options.overloadRate);
  const plan = (name: ScenarioName): LoadPlan => ({
    name,
    shape: { kind: 'rate', perSecond: name === 'overload' ? offered.perSecond : options.rate, maxConnections: options.maxConnections },
    warmupS: options.warmupS,
    durationS: name === 'overload' ? options.overloadDurationS : options.durationS,
    drainTimeoutS,
    body: (index) => paymentBody(routes, index),
    // A client retries a 503 overloaded after Retry-After with the same key, a few times; the overload scenario measures the refusals themselves.
    overloadRetries: name === 'overload' ? 0 : options.overloadRetries,
    ...(name === 'kill' ? { retryForMs: CLIENT_RETRY_MS } : {}),
  });
  const descriptions: Record<ScenarioName, string> = {
    hang: `${failing} stops answering (sandbox mode hang) ${options.faultAtS} s into the window`,
    error: `${failing} answers every attempt with a retryable gateway_error ${options.faultAtS} s into the window`,
    kill: `two orchestrators share the load; one is SIGKILLed ${options.faultAtS} s into the window`,
    overload: `${offered.perSecond}/s offered for ${options.overloadDurationS} s, every gateway healthy, no retries of a 503 overloaded`,
  };
  const hooks = (name: ScenarioName) => async (context: PhaseContext) => {
    if (name === 'kill') return killOrchestrator(context, timing);
    if (name === 'overload') return overload(context, offered);
    return gatewayFault(context, timing, failing, name);
  };

  const scenarios: ScenarioResult[] = [];
  for (const name of options.scenarios) {
    const phase = await runPhase<ScenarioFindings>(session, plan(name), {
      orchestrators: name === 'kill' ? 2 : 1,
      logLevel: options.logLevel,
      scenario: hooks(name),
      ...(options.profile ? { profileDir: session.subDir(`profile-${name}`) } : {}),
    });
    if (phase.profile) console.log(formatProfile(phase.profile));
    scenarios.push({ name, description: descriptions[name], phase });
    console.error(`${name}: ${JSON.stringify({ ...phase.scenario, overloaded: phase.overloaded })}`);
  }

  const results: FailoverResults = {
    kind: 'failover',
    run: session.info,
    settings: {
      rate: options.rate,
      warmupS: options.warmupS,
      faultAtS: options.faultAtS,
      durationS: options.durationS,
      overloadRate: `${offered.perSecond} (${offered.source})`,
      overloadDurationS: options.overloadDurationS,
      drainTimeoutS,
      servicesLogLevel: options.logLevel,
      clientRetryMs: `${CLIENT_RETRY_MS} (kill scenario only: no answer or a 503 other than overloaded → same Idempotency-Key to the other instance)`,
      overloadRetries: `${options.overloadRetries} (hang, error, kill: a 503 overloaded is sent again with the same Idempotency-Key after its Retry-After, or 250 ms doubling up to 2 s without one, plus up to 20% jitter; overload: never)`,
      payments: 'deposits over every (region, currency) that at least two gateways serve, amounts 10.00–1,000.00, 1,000 accounts',
    },
    scenarios,
    targets: scenarios.flatMap(scenarioTargets),
  };
  const markdown = failoverMarkdown(results);
  console.log(`\n${markdown}`);
  for (const file of writeResults(options.out, results, markdown)) console.error(`wrote ${file}`);
  session.succeeded();
});
