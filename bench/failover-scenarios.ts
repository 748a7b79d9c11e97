// The failover scenarios of `npm run bench:failover`, each a phase
// hook (see phase.ts): it injects its fault part-way through the load and,
// once every payment is terminal (or the drain gave up), reports what the
// fault did. Times are performance.now() milliseconds, reported relative to
// the fault.
import { setTimeout as delay } from 'node:timers/promises';
import { gatewayHealthChanged } from '../topics/schemas';
import { watchGatewayTraffic, type GatewayTraffic } from './gateway-traffic';
import { scrapeSamples, sumSamples, type MetricSample } from './metrics';
import type { PhaseContext, ScenarioHooks } from './phase';
import type { SandboxMode } from '../gateways/sandbox';
import { watchTopic, type PaymentRecord } from './tracker';

export type ScenarioName = 'hang' | 'error' | 'kill' | 'overload';

/** One gateway's share of what the orchestrator did in a scenario: requests-topic traffic plus the orchestrators' counters. */
export interface GatewayTally extends GatewayTraffic {
  /** The gateway the scenario hangs or makes fail; every other one is healthy the whole time. */
  faulted: boolean;
  /** Attempts that ended in a timeout (payment_attempt_outcomes_total{outcome="timeout"}). */
  timeouts: number;
  /** payment_failovers_total by cause. */
  failoversAfterTimeout: number;
  failoversAfterFailure: number;
  /** payment_late_successes_total: successes after the attempt had timed out or been cancelled. */
  lateSuccesses: number;
}

/**
 * What the orchestrator did to the gateways and the payments, common to every
 * scenario. On a healthy gateway (sandbox latency 0) a timeout, a cancel or a
 * compensation is a false alarm: the orchestrator's own delay taken for the
 * gateway's silence.
 */
export interface TrafficFindings {
  gateways: GatewayTally[];
  healthy: { timeouts: number; failedOverFrom: number; cancels: number; compensations: number };
  /** Compensate commands to any gateway, the faulted one included. */
  compensations: number;
  /** payments_refused_overloaded_total, summed over the instances. */
  refusedOverloaded: number;
  /** Payments of the whole phase (warm-up included) that ended FAILURE, by reason. */
  failedPayments: number;
  failedByReason: Record<string, number>;
  /** How the counters were read, e.g. the killed instance's as of just before the kill. */
  note?: string;
}

export interface ScenarioTiming {
  /** From the start of the load (warm-up included) to the fault. */
  faultAfterMs: number;
}

export interface GatewayFaultFindings {
  kind: 'gateway-fault';
  gatewayId: string;
  mode: SandboxMode;
  timeoutMs: number;
  /** From the PUT /sandbox that started the fault to reading the breaker's `open` on the health topic. */
  breakerOpenAfterMs?: number;
  /** Attempts at the failing gateway that ended in a timeout and failed over (orchestrator metric). */
  failedOverAfterTimeout: number;
  /** Attempts at the failing gateway that failed retryably and failed over (orchestrator metric). */
  failedOverAfterError: number;
  /** Payments settled by the failing gateway after the fault (a hanging or erroring gateway settles nothing). */
  settledByFailingGatewayAfterFault: number;
  /** Worst POST → terminal event over every payment of the phase, warm-up included. */
  worstEndToEndMs: number;
  /** Worst 202 → terminal event over every payment of the phase, warm-up included. */
  worstAcceptedToTerminalMs: number;
  /** The bound of the hang target: the gateway's timeout + 1 s, from the 202 to the terminal event. */
  boundMs: number;
  /** Accepted payments not terminal within the bound (never terminal included). */
  overBound: number;
  traffic: TrafficFindings;
}

export interface KillFindings {
  kind: 'kill';
  killed: string;
  /** Payments accepted before the kill and not yet terminal at it. */
  orphans: number;
  /** From the SIGKILL to the terminal event of the last orphan. */
  lastOrphanCompletedAfterMs?: number;
  orphansNeverTerminal: number;
  worstEndToEndMs: number;
  traffic: TrafficFindings;
}

export interface OverloadFindings {
  kind: 'overload';
  offeredPerSecond: number;
  /** Where the offered rate came from (a flag, or twice the last flat-out figure). */
  rateSource: string;
  /** The longest gateway timeout: the budget an accepted payment's p99 is held to. */
  timeoutMs: number;
  worstEndToEndMs: number;
  traffic: TrafficFindings;
}

export type ScenarioFindings = GatewayFaultFindings | KillFindings | OverloadFindings;

/** Waited after the drain, so commands sent for the last payments (a compensation follows its payment's end) are read. */
const TRAFFIC_SETTLE_MS = 3_000;

/**
 * Starts watching the gateways' request topics; `finish` adds the counters
 * of the orchestrators still running (and of any snapshot taken before an
 * instance was killed) and tallies them against the faulted gateway.
 */
async function observeTraffic(context: PhaseContext, faulted: string | undefined) {
  const { stack, tracker } = context;
  const watch = await watchGatewayTraffic(stack.kafka, new Map(stack.rules.map((rule) => [rule.gatewayId, stack.topics.gatewayRequests(rule.gatewayId)])));
  const snapshots: MetricSample[][] = [];
  return {
    /** Keeps an instance's counters before it goes away (a SIGKILL). */
    async snapshot(baseUrl: string) {
      snapshots.push(await scrapeSamples(baseUrl).catch(() => []));
    },
    async finish(liveUrls: readonly string[], note?: string): Promise<TrafficFindings> {
      await delay(TRAFFIC_SETTLE_MS);
      const samples = [...snapshots, ...(await Promise.all(liveUrls.map((url) => scrapeSamples(url))))].flat();
      await watch.stop();
      const gateways = watch.tally().map((traffic): GatewayTally => {
        const gateway = traffic.gatewayId;
        return {
          ...traffic,
          faulted: gateway === faulted,
          timeouts: sumSamples(samples, 'payment_attempt_outcomes_total', { gateway, outcome: 'timeout' }),
          failoversAfterTimeout: sumSamples(samples, 'payment_failovers_total', { gateway, cause: 'timeout' }),
          failoversAfterFailure: sumSamples(samples, 'payment_failovers_total', { gateway, cause: 'failure' }),
          lateSuccesses: sumSamples(samples, 'payment_late_successes_total', { gateway }),
        };
      });
      const healthy = gateways.filter((gateway) => !gateway.faulted);
      const sum = (list: readonly GatewayTally[], pick: (gateway: GatewayTally) => number) => list.reduce((total, gateway) => total + pick(gateway), 0);
      const failedByReason: Record<string, number> = {};
      for (const record of tracker.payments.values()) {
        if (record.status === 'FAILURE') failedByReason[record.reason ?? 'unknown'] = (failedByReason[record.reason ?? 'unknown'] ?? 0) + 1;
      }
      return {
        gateways,
        healthy: { timeouts: sum(healthy, (g) => g.timeouts), failedOverFrom: sum(healthy, (g) => g.failedOverFrom), cancels: sum(healthy, (g) => g.cancels), compensations: sum(healthy, (g) => g.compensations) },
        compensations: sum(gateways, (g) => g.compensations),
        refusedOverloaded: sumSamples(samples, 'payments_refused_overloaded_total'),
        failedPayments: Object.values(failedByReason).reduce((total, n) => total + n, 0),
        failedByReason,
        ...(note ? { note } : {}),
      };
    },
  };
}

const endToEnd = (record: PaymentRecord) => (record.terminalAtMs === undefined ? Number.POSITIVE_INFINITY : record.terminalAtMs - record.sentAtMs);
/** From the 202 (a payment the orchestrator took on) to its terminal event; a 503 and the client's wait before its retry are not the orchestrator's to answer for. */
const acceptedToTerminal = (record: PaymentRecord) => (record.terminalAtMs === undefined ? Number.POSITIVE_INFINITY : record.terminalAtMs - record.acceptedAtMs);
const finite = (ms: number) => (Number.isFinite(ms) ? Math.round(ms) : -1);
const round = (ms: number) => Math.round(ms);

/** Runs `fault` at its time; what it returns (or throws) is awaited by `finish`. */
function scheduleFault<T>(timing: ScenarioTiming, fault: () => Promise<T>): Promise<T> {
  return delay(timing.faultAfterMs).then(fault);
}

/** One gateway turns to `mode` (hang or error) through its sandbox controls. */
export async function gatewayFault(context: PhaseContext, timing: ScenarioTiming, gatewayId: string, mode: 'hang' | 'error'): Promise<ScenarioHooks<GatewayFaultFindings>> {
  const { stack, tracker } = context;
  const gateway = stack.gateways.get(gatewayId);
  const rule = stack.rules.find((candidate) => candidate.gatewayId === gatewayId);
  if (!gateway || !rule) throw new Error(`no gateway ${gatewayId} in the rules`);
  let faultAtMs: number | undefined;
  let breakerOpenAtMs: number | undefined;
  const traffic = await observeTraffic(context, gatewayId);
  const health = await watchTopic(stack.kafka, stack.topics.gatewayHealth, gatewayHealthChanged, (event, readAtMs) => {
    if (faultAtMs !== undefined && breakerOpenAtMs === undefined && event.gatewayId === gatewayId && event.breaker === 'open') breakerOpenAtMs = readAtMs;
  });
  const fault = scheduleFault(timing, async () => {
    faultAtMs = performance.now();
    const answer = await fetch(`${gateway.baseUrl}/sandbox`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mode, latencyMs: 0 }) });
    if (answer.status !== 200) throw new Error(`PUT /sandbox on ${gatewayId}: ${answer.status} ${await answer.text()}`);
  });
  return {
    progressNote: () =>
      faultAtMs === undefined
        ? `${gatewayId}: healthy`
        : `${gatewayId}: ${mode} for ${((performance.now() - faultAtMs) / 1000).toFixed(0)} s, breaker ${breakerOpenAtMs === undefined ? 'not open yet' : 'open'}`,
    async finish() {
      await fault;
      await health.stop();
      const found = await traffic.finish(stack.orchestrators.map((orchestrator) => orchestrator.baseUrl));
      const faulted = found.gateways.find((gateway) => gateway.faulted);
      const records = [...tracker.payments.values()];
      const boundMs = rule.timeoutMs + 1_000;
      return {
        kind: 'gateway-fault',
        gatewayId,
        mode,
        timeoutMs: rule.timeoutMs,
        ...(breakerOpenAtMs !== undefined && faultAtMs !== undefined ? { breakerOpenAfterMs: round(breakerOpenAtMs - faultAtMs) } : {}),
        failedOverAfterTimeout: faulted?.failoversAfterTimeout ?? 0,
        failedOverAfterError: faulted?.failoversAfterFailure ?? 0,
        settledByFailingGatewayAfterFault: records.filter((r) => r.gatewayId === gatewayId && r.status === 'SUCCESS' && r.sentAtMs > (faultAtMs ?? Infinity)).length,
        worstEndToEndMs: finite(Math.max(0, ...records.map(endToEnd))),
        worstAcceptedToTerminalMs: finite(Math.max(0, ...records.map(acceptedToTerminal))),
        boundMs,
        overBound: records.filter((r) => acceptedToTerminal(r) > boundMs).length,
        traffic: found,
      };
    },
  };
}

/**
 * SIGKILL one of the orchestrators. The load then goes to the others only,
 * and a request that got no answer from the killed one is sent again with
 * the same Idempotency-Key (the load plan's retryForMs), as a client would.
 */
export async function killOrchestrator(context: PhaseContext, timing: ScenarioTiming): Promise<ScenarioHooks<KillFindings>> {
  const { stack, tracker } = context;
  const victimIndex = stack.orchestrators.length - 1;
  const victim = stack.orchestrators[victimIndex];
  if (!victim || stack.orchestrators.length < 2) throw new Error('the kill scenario needs two orchestrators');
  const killed = `orchestrator-${victimIndex + 1}`;
  let live = stack.orchestrators.map((orchestrator) => orchestrator.baseUrl);
  let killedAtMs: number | undefined;
  let orphans: Array<[string, PaymentRecord]> = [];
  const traffic = await observeTraffic(context, undefined);
  const fault = scheduleFault(timing, async () => {
    // Its counters die with it: kept as of a moment before (its failovers and commands are on the topics anyway).
    await traffic.snapshot(victim.baseUrl);
    killedAtMs = performance.now();
    victim.child.kill('SIGKILL');
    live = live.filter((url) => url !== victim.baseUrl);
    orphans = [...tracker.payments].filter(([, record]) => record.terminalAtMs === undefined);
    await victim.exited;
  });
  return {
    targets: () => live,
    progressNote: () => {
      if (killedAtMs === undefined) return `${stack.orchestrators.length} orchestrators`;
      const left = orphans.filter(([, record]) => record.terminalAtMs === undefined).length;
      return `${killed} killed ${((performance.now() - killedAtMs) / 1000).toFixed(0)} s ago; orphans left ${left} of ${orphans.length}`;
    },
    async finish() {
      await fault;
      const at = killedAtMs ?? 0;
      const completions = orphans.flatMap(([, record]) => (record.terminalAtMs === undefined ? [] : [record.terminalAtMs - at]));
      const worst = Math.max(0, ...[...tracker.payments.values()].map(endToEnd));
      const found = await traffic.finish(live, `${killed}'s counters as of just before its SIGKILL; attempts, failovers and commands from the request topics`);
      return {
        kind: 'kill',
        killed,
        orphans: orphans.length,
        ...(completions.length > 0 ? { lastOrphanCompletedAfterMs: round(Math.max(...completions)) } : {}),
        orphansNeverTerminal: orphans.length - completions.length,
        worstEndToEndMs: finite(worst),
        traffic: found,
      };
    },
  };
}

/**
 * Offered load far beyond capacity: every gateway healthy, one orchestrator.
 * The load plan sends without retrying a 503 overloaded; this hook only
 * watches what the orchestrator did with what it accepted.
 */
export async function overload(context: PhaseContext, offered: { perSecond: number; source: string }): Promise<ScenarioHooks<OverloadFindings>> {
  const { stack, tracker } = context;
  const traffic = await observeTraffic(context, undefined);
  return {
    async finish() {
      return {
        kind: 'overload',
        offeredPerSecond: offered.perSecond,
        rateSource: offered.source,
        timeoutMs: Math.max(...stack.rules.map((rule) => rule.timeoutMs)),
        worstEndToEndMs: finite(Math.max(0, ...[...tracker.payments.values()].map(endToEnd))),
        traffic: await traffic.finish(stack.orchestrators.map((orchestrator) => orchestrator.baseUrl)),
      };
    },
  };
}
