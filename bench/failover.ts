// `npm run bench:failover`: failover and recovery under load. Three
// scenarios at 300 payments/s, each on a fresh stack with three sandbox
// gateways: one gateway starts hanging; one gateway returns retryable
// errors; one of two orchestrator instances is SIGKILLed. Usage: see USAGE.
import { parseArgs } from 'node:util';
import { runBench } from './cleanup';
import { gatewayFault, killOrchestrator, type GatewayFaultFindings, type KillFindings, type ScenarioName } from './failover-scenarios';
import type { LoadPlan } from './load';
import { paymentBody, routesOf } from './payments';
import { runPhase, type PhaseResult } from './phase';
import { closingSections, countsText, markdownTable, npmCommand, processesMarkdown, resourceContext, runInfoMarkdown, targetsMarkdown, verdictOf, writeResults, joinSections, type RunInfo, type TargetCheck } from './report';
import { openSession } from './session';

const USAGE = `usage: npm run bench:failover [-- options]

  --scenarios LIST      which of hang,error,kill to run, in that order (all three)
  --rate N              payments/s, open loop (300)
  --warmup S            unmeasured seconds before the measured window (5)
  --fault-at S          seconds into the measured window when the fault starts (10)
  --duration S          measured seconds of each scenario (40)
  --gateway ID          the gateway that hangs or errors (the one with the highest weight)
  --log-level LEVEL     the services' LOG_LEVEL (info)
  --max-connections N   most requests open at once per orchestrator; a send beyond it is counted unsent (256)
  --out PATH            where to write the results, without extension (docs/benchmarks/failover)
  --label TEXT          a note printed at the top of the results
  --keep-logs           keep the services' logs (kept anyway when the run fails)
  --help`;

const SCENARIOS: readonly ScenarioName[] = ['hang', 'error', 'kill'];
/** How long a client keeps retrying a payment with the same key after no answer (the kill scenario). */
const CLIENT_RETRY_MS = 30_000;

interface ScenarioResult {
  name: ScenarioName;
  description: string;
  phase: PhaseResult<GatewayFaultFindings | KillFindings>;
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
      warmup: { type: 'string', default: '5' },
      'fault-at': { type: 'string', default: '10' },
      duration: { type: 'string', default: '40' },
      gateway: { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      'max-connections': { type: 'string', default: '256' },
      out: { type: 'string', default: 'docs/benchmarks/failover' },
      label: { type: 'string' },
      'keep-logs': { type: 'boolean', default: false },
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
    warmupS: number('warmup', values.warmup),
    faultAtS: number('fault-at', values['fault-at']),
    durationS: number('duration', values.duration),
    gateway: values.gateway,
    logLevel: values['log-level'],
    maxConnections: number('max-connections', values['max-connections']),
    out: values.out,
    label: values.label,
    keepLogs: values['keep-logs'],
  };
  if (options.faultAtS >= options.durationS) throw new Error(`--fault-at must fall inside --duration\n${USAGE}`);
  return options;
}

function scenarioTargets(scenario: ScenarioResult): TargetCheck[] {
  const { phase } = scenario;
  const findings = phase.scenario;
  if (!findings) return [];
  const clean = `errors ${phase.errorCount}, failed ${phase.failedCount}, lost ${phase.lost}`;
  // A target can be met while payments still ended FAILURE that a healthy stack would have settled: say so.
  const failures = phase.failedCount > 0 ? `${phase.failedCount} payments ended FAILURE (${countsText(phase.failed)})` : '';
  const check = (target: string, measured: string, ok: boolean, gap: string): TargetCheck => ({
    target,
    measured,
    verdict: verdictOf(ok),
    note: ok ? failures : [gap, failures, resourceContext(phase)].filter(Boolean).join('; '),
  });
  if ('killed' in findings) {
    return [
      check(
        'kill: every accepted payment reaches a terminal state',
        `${findings.orphans} orphans, the last terminal ${findings.lastOrphanCompletedAfterMs ?? '–'} ms after the SIGKILL; ${clean}`,
        phase.lost === 0 && findings.orphansNeverTerminal === 0,
        `${phase.lost} accepted payments never terminal (${findings.orphansNeverTerminal} of them orphans)`,
      ),
    ];
  }
  if (scenario.name === 'hang') {
    return [
      check(
        `hang: every payment terminal within the gateway's timeout + 1 s (${findings.boundMs} ms)`,
        `worst ${findings.worstEndToEndMs} ms; ${findings.overBound} over the bound; ${clean}`,
        findings.overBound === 0 && phase.lost === 0,
        `${findings.overBound} payments over the bound, the worst by ${findings.worstEndToEndMs - findings.boundMs} ms (${phase.lost} never terminal); median payment ${phase.endToEndMs.p50} ms`,
      ),
    ];
  }
  return [
    check(
      'error: every payment of the erroring gateway succeeds elsewhere',
      `${findings.failedOverAfterError} failed over from ${findings.gatewayId}; ${clean}`,
      phase.failedCount === 0 && phase.lost === 0 && phase.errorCount === 0,
      phase.errorCount > 0 ? `errors: ${countsText(phase.errors)}` : '',
    ),
  ];
}

function findingsMarkdown(findings: GatewayFaultFindings | KillFindings | undefined): string {
  if (!findings) return '';
  if ('killed' in findings) {
    return markdownTable(
      ['killed', 'orphans (pending at the kill)', 'last orphan terminal after', 'orphans never terminal', 'worst e2e ms'],
      [[findings.killed, findings.orphans, findings.lastOrphanCompletedAfterMs === undefined ? '–' : `${findings.lastOrphanCompletedAfterMs} ms`, findings.orphansNeverTerminal, findings.worstEndToEndMs]],
    );
  }
  return markdownTable(
    ['gateway', 'mode', 'timeout ms', 'fault → breaker open', 'failed over after timeout', 'failed over after error', 'settled by it after the fault', 'worst e2e ms', `over ${findings.boundMs} ms`],
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
    sections.push(
      `## ${name}: ${description}`,
      findingsMarkdown(phase.scenario),
      markdownTable(
        ['accepted/s', 'completed/s', 'e2e p50 ms', 'p95', 'p99', 'max', 'errors', 'failed', 'lost', 'retried requests'],
        [[phase.acceptedPerSecond, phase.completedPerSecond, phase.endToEndMs.p50, phase.endToEndMs.p95, phase.endToEndMs.p99, phase.endToEndMs.max, phase.errorCount, phase.failedCount, phase.lost, phase.retries]],
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
  const plan = (name: ScenarioName): LoadPlan => ({
    name,
    shape: { kind: 'rate', perSecond: options.rate, maxConnections: options.maxConnections },
    warmupS: options.warmupS,
    durationS: options.durationS,
    drainTimeoutS,
    body: (index) => paymentBody(routes, index),
    ...(name === 'kill' ? { retryForMs: CLIENT_RETRY_MS } : {}),
  });
  const descriptions: Record<ScenarioName, string> = {
    hang: `${failing} stops answering (sandbox mode hang) ${options.faultAtS} s into the window`,
    error: `${failing} answers every attempt with a retryable gateway_error ${options.faultAtS} s into the window`,
    kill: `two orchestrators share the load; one is SIGKILLed ${options.faultAtS} s into the window`,
  };

  const scenarios: ScenarioResult[] = [];
  for (const name of options.scenarios) {
    const phase = await runPhase<GatewayFaultFindings | KillFindings>(session, plan(name), {
      orchestrators: name === 'kill' ? 2 : 1,
      logLevel: options.logLevel,
      scenario: async (context) => (name === 'kill' ? killOrchestrator(context, timing) : gatewayFault(context, timing, failing, name)),
    });
    scenarios.push({ name, description: descriptions[name], phase });
    console.error(`${name}: ${JSON.stringify(phase.scenario)}`);
  }

  const results: FailoverResults = {
    kind: 'failover',
    run: session.info,
    settings: {
      rate: options.rate,
      warmupS: options.warmupS,
      faultAtS: options.faultAtS,
      durationS: options.durationS,
      drainTimeoutS,
      servicesLogLevel: options.logLevel,
      clientRetryMs: `${CLIENT_RETRY_MS} (kill scenario only: no answer or 503 → same Idempotency-Key to the other instance)`,
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
