// `npm run bench` and `npm run bench:soak`: end-to-end throughput and latency
// of one orchestrator with three zero-latency sandbox gateways on a local
// broker, against the raw kafkajs echo baseline. Usage: see USAGE.
import { parseArgs } from 'node:util';
import { runBench } from './cleanup';
import { formatProfile } from './cpu-profile';
import { runEcho, type EchoResult } from './echo';
import type { LoadPlan, LoadShape } from './load';
import { paymentBody, routesOf } from './payments';
import { runPhase, type PhaseResult } from './phase';
import { npmCommand, writeResults } from './report';
import { openSession } from './session';
import { ratioToEcho, summarizeTargets, throughputMarkdown, type ThroughputResults } from './throughput-report';

const USAGE = `usage: npm run bench [-- options]        (npm run bench:soak [-- options] for the soak)

  no options            the standard suite: echo baseline (closed loop, then open loop at 300/s),
                        flat out for 60 s, 300/s for 60 s,
                        written to docs/benchmarks/throughput.{json,md}
  --flat-out            one flat-out phase instead of the suite
  --rate N              one phase at N payments/s (open loop) instead of the suite
  --concurrency N       payments in flight end to end when flat out, and echo requests in flight (128)
  --duration S          measured seconds of each phase (60; soak 600)
  --warmup S            unmeasured seconds before each phase (10; soak 60)
  --soak                300/s (or --rate) for 10 minutes, with the orchestrator's RSS series,
                        written to docs/benchmarks/soak.{json,md}
  --skip-echo           no echo baseline (the soak never runs one); without it, --rate N also runs
                        the echo as an open loop at N/s
  --profile             run the orchestrator and the gateway workers with --cpu-prof; print the top
                        self-time functions of the orchestrator and of the busiest gateway worker
  --brokers N           start a local Kafka of N nodes (1; 3 = replication factor 3, min.insync.replicas 2);
                        ignored with KAFKA_BROKERS
  --log-level LEVEL     the services' LOG_LEVEL (info, as in production)
  --max-connections N   open loop: most requests open at once; a send beyond it is counted unsent (256)
  --out PATH            where to write the results, without extension
  --label TEXT          a note printed at the top of the results
  --keep-logs           keep the services' logs (kept anyway when the run fails)
  --help`;

const STANDARD_RATE = 300;
/** Healthy gateways answer at once: whatever is not terminal this long after the last send is lost. */
const DRAIN_TIMEOUT_S = 30;

function parseOptions() {
  const { values } = parseArgs({
    options: {
      'flat-out': { type: 'boolean', default: false },
      rate: { type: 'string' },
      concurrency: { type: 'string', default: '128' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      soak: { type: 'boolean', default: false },
      'skip-echo': { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      brokers: { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      'max-connections': { type: 'string', default: '256' },
      out: { type: 'string' },
      label: { type: 'string' },
      'keep-logs': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  const positive = (name: string, value: string | undefined, fallback: number) => {
    const number = value === undefined ? fallback : Number(value);
    if (!Number.isFinite(number) || number <= 0) throw new Error(`--${name} must be a positive number, not ${value}\n${USAGE}`);
    return number;
  };
  if (values['flat-out'] && values.rate !== undefined) throw new Error(`--flat-out and --rate exclude each other\n${USAGE}`);
  const brokers = values.brokers === undefined ? undefined : Number(values.brokers);
  if (brokers !== undefined && !(Number.isInteger(brokers) && brokers >= 1 && brokers <= 5)) throw new Error(`--brokers must be a whole number from 1 to 5, not ${values.brokers}\n${USAGE}`);
  const soak = values.soak;
  return {
    help: values.help,
    soak,
    flatOut: values['flat-out'],
    rate: values.rate === undefined ? undefined : positive('rate', values.rate, STANDARD_RATE),
    concurrency: Math.round(positive('concurrency', values.concurrency, 128)),
    durationS: positive('duration', values.duration, soak ? 600 : 60),
    warmupS: values.warmup === undefined ? (soak ? 60 : 10) : Number(values.warmup),
    skipEcho: values['skip-echo'] || soak,
    profile: values.profile,
    brokers,
    logLevel: values['log-level'],
    maxConnections: Math.round(positive('max-connections', values['max-connections'], 256)),
    out: values.out ?? (soak ? 'docs/benchmarks/soak' : 'docs/benchmarks/throughput'),
    label: values.label,
    keepLogs: values['keep-logs'],
  };
}
type Options = ReturnType<typeof parseOptions>;

function shapesOf(options: Options): LoadShape[] {
  const flatOut: LoadShape = { kind: 'flat-out', concurrency: options.concurrency };
  const rate = (perSecond: number): LoadShape => ({ kind: 'rate', perSecond, maxConnections: options.maxConnections });
  if (options.soak) return [rate(options.rate ?? STANDARD_RATE)];
  if (options.flatOut) return [flatOut];
  if (options.rate !== undefined) return [rate(options.rate)];
  return [flatOut, rate(STANDARD_RATE)];
}

const phaseName = (shape: LoadShape) => (shape.kind === 'flat-out' ? 'flat-out' : `${shape.perSecond}/s`);

runBench(async (cleanup) => {
  const options = parseOptions();
  if (options.help) {
    console.log(USAGE);
    return;
  }
  const args = process.argv.slice(2).filter((arg) => arg !== '--soak');
  const session = await openSession({
    cleanup,
    command: npmCommand(options.soak ? 'bench:soak' : 'bench', args),
    label: options.label,
    keepLogs: options.keepLogs,
    ...(options.brokers === undefined ? {} : { brokers: options.brokers }),
  });
  const routes = routesOf(session.rules, ['deposit', 'withdrawal'], 1);

  let echo: EchoResult | undefined;
  if (!options.skipEcho) {
    echo = await runEcho({ broker: session.broker, concurrency: options.concurrency, warmupS: options.warmupS, durationS: options.durationS, runDir: session.runDir, sampler: session.sampler, cleanup });
    console.error(`echo: ${echo.roundTripsPerSecond} round trips/s, p95 ${echo.latencyMs.p95} ms`);
  }
  // The same request and reply at the rate phase's rate: the floor under that phase's latency on this machine.
  const rated = shapesOf(options).find((shape) => shape.kind === 'rate');
  let echoAtRate: EchoResult | undefined;
  if (!options.skipEcho && rated?.kind === 'rate') {
    echoAtRate = await runEcho({ broker: session.broker, concurrency: options.concurrency, perSecond: rated.perSecond, warmupS: options.warmupS, durationS: options.durationS, runDir: session.runDir, sampler: session.sampler, cleanup });
    console.error(`echo at ${rated.perSecond}/s: ${echoAtRate.roundTripsPerSecond} round trips/s, p95 ${echoAtRate.latencyMs.p95} ms, p99 ${echoAtRate.latencyMs.p99} ms`);
  }
  const phases: PhaseResult[] = [];
  for (const shape of shapesOf(options)) {
    const name = phaseName(shape);
    const plan: LoadPlan = { name, shape, warmupS: options.warmupS, durationS: options.durationS, drainTimeoutS: DRAIN_TIMEOUT_S, body: (index) => paymentBody(routes, index) };
    const dirName = name.replace('/', '-per-');
    const phase = await runPhase(session, plan, {
      orchestrators: 1,
      logLevel: options.logLevel,
      ...(options.profile ? { profileDir: session.subDir(`profile-${dirName}`), gatewayProfileDir: session.subDir(`profile-gateways-${dirName}`) } : {}),
    });
    phases.push(phase);
    console.error(`${name}: accepted ${phase.acceptedPerSecond}/s, completed ${phase.completedPerSecond}/s, p95 ${phase.endToEndMs.p95} ms, errors ${phase.errorCount}, lost ${phase.lost}`);
    if (phase.profile) console.log(formatProfile(phase.profile));
    if (phase.gatewayProfile) console.log(formatProfile(phase.gatewayProfile));
  }

  const results: ThroughputResults = {
    kind: options.soak ? 'soak' : 'throughput',
    run: session.info,
    settings: {
      concurrency: options.concurrency,
      warmupS: options.warmupS,
      durationS: options.durationS,
      maxConnections: options.maxConnections,
      servicesLogLevel: options.logLevel,
      drainTimeoutS: DRAIN_TIMEOUT_S,
      payments: 'deposits and withdrawals in turn over every (region, currency) the seed rules serve, amounts 10.00–1,000.00, 1,000 accounts',
    },
    ...(echo ? { echo } : {}),
    ...(echoAtRate ? { echoAtRate } : {}),
    phases,
    targets: [],
  };
  const ratio = ratioToEcho(results);
  if (ratio !== undefined) results.ratioToEcho = ratio;
  results.targets = summarizeTargets(results);
  const markdown = throughputMarkdown(results);
  console.log(`\n${markdown}`);
  for (const file of writeResults(options.out, results, markdown)) console.error(`wrote ${file}`);
  session.succeeded();
});
