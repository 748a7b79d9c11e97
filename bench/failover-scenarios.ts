// The three failover scenarios of `npm run bench:failover`, each a phase
// hook (see phase.ts): it injects its fault part-way through the load and,
// once every payment is terminal (or the drain gave up), reports what the
// fault did. Times are performance.now() milliseconds, reported relative to
// the fault.
import { setTimeout as delay } from 'node:timers/promises';
import { gatewayHealthChanged } from '../topics/schemas';
import { scrapeMetric } from './metrics';
import type { PhaseContext, ScenarioHooks } from './phase';
import type { SandboxMode } from '../gateways/sandbox';
import { watchTopic, type PaymentRecord } from './tracker';

export type ScenarioName = 'hang' | 'error' | 'kill';

export interface ScenarioTiming {
  /** From the start of the load (warm-up included) to the fault. */
  faultAfterMs: number;
}

export interface GatewayFaultFindings {
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
  /** The bound of the hang target: the gateway's timeout + 1 s. */
  boundMs: number;
  /** Payments not terminal within the bound (never terminal included). */
  overBound: number;
}

export interface KillFindings {
  killed: string;
  /** Payments accepted before the kill and not yet terminal at it. */
  orphans: number;
  /** From the SIGKILL to the terminal event of the last orphan. */
  lastOrphanCompletedAfterMs?: number;
  orphansNeverTerminal: number;
  worstEndToEndMs: number;
}

const endToEnd = (record: PaymentRecord) => (record.terminalAtMs === undefined ? Number.POSITIVE_INFINITY : record.terminalAtMs - record.sentAtMs);
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
      const orchestrator = stack.orchestrators[0]?.baseUrl ?? '';
      const failovers = (cause: string) => scrapeMetric(orchestrator, 'payment_failovers_total', { gateway: gatewayId, cause });
      const records = [...tracker.payments.values()];
      const boundMs = rule.timeoutMs + 1_000;
      const worst = Math.max(0, ...records.map(endToEnd));
      return {
        gatewayId,
        mode,
        timeoutMs: rule.timeoutMs,
        ...(breakerOpenAtMs !== undefined && faultAtMs !== undefined ? { breakerOpenAfterMs: round(breakerOpenAtMs - faultAtMs) } : {}),
        failedOverAfterTimeout: await failovers('timeout'),
        failedOverAfterError: await failovers('failure'),
        settledByFailingGatewayAfterFault: records.filter((r) => r.gatewayId === gatewayId && r.status === 'SUCCESS' && r.sentAtMs > (faultAtMs ?? Infinity)).length,
        worstEndToEndMs: Number.isFinite(worst) ? round(worst) : -1,
        boundMs,
        overBound: records.filter((r) => endToEnd(r) > boundMs).length,
      };
    },
  };
}

/**
 * SIGKILL one of the orchestrators. The load then goes to the others only,
 * and a request that got no answer from the killed one is sent again with
 * the same Idempotency-Key (the load plan's retryForMs), as a client would.
 */
export function killOrchestrator(context: PhaseContext, timing: ScenarioTiming): ScenarioHooks<KillFindings> {
  const { stack, tracker } = context;
  const victimIndex = stack.orchestrators.length - 1;
  const victim = stack.orchestrators[victimIndex];
  if (!victim || stack.orchestrators.length < 2) throw new Error('the kill scenario needs two orchestrators');
  const killed = `orchestrator-${victimIndex + 1}`;
  let live = stack.orchestrators.map((orchestrator) => orchestrator.baseUrl);
  let killedAtMs: number | undefined;
  let orphans: Array<[string, PaymentRecord]> = [];
  const fault = scheduleFault(timing, async () => {
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
      return {
        killed,
        orphans: orphans.length,
        ...(completions.length > 0 ? { lastOrphanCompletedAfterMs: round(Math.max(...completions)) } : {}),
        orphansNeverTerminal: orphans.length - completions.length,
        worstEndToEndMs: Number.isFinite(worst) ? round(worst) : -1,
      };
    },
  };
}
