import CircuitBreaker from 'opossum';
import type { Logger } from '../../runtime/logger';
import type { GatewayHealthChanged, GatewayRule } from '../../topics/schemas';

/**
 * The whole health model of a gateway, in one place: whether selection may
 * use it (its circuit) and how much traffic it gets (its health factor).
 *
 *                   technical failure (timeout, retryable error): streak += 1
 *                   success or business decline:                   streak  = 0
 *
 *  ┌──────────┐ (a) streak reaches `consecutiveFailures`,        ┌──────────────┐
 *  │  closed  │     unless the region's ejection cap is reached  │     open     │
 *  │ weight = │ (b) failure share > threshold over ≥ volume      │  (ejected)   │
 *  │  rule ×  │     outcomes in the rolling window (opossum)     │min(base × n, │
 *  │  factor  │ (c) another instance published `open`            │   max) ms    │
 *  └──────────┘─────────────────────────────────────────────────▶└──────────────┘
 *       ▲                                                            │       ▲
 *       │                                         ejection time over │       │  trial fails: n += 1
 *       │                                                            ▼       │
 *       │                                                        ┌──────────────┐
 *       └────────────────────────────────────────────────────────│  half-open   │
 *         trial succeeds (or `closed` published)                 │ one trial at │
 *                                                                │    a time    │
 *                                                                └──────────────┘
 *
 *   n = ejections in a row, this one included; base = `resetTimeoutMs`, max = `maxEjectionMs`; n starts over
 *   once the gateway has stayed closed for `maxEjectionMs`.
 *
 *   factor (closed only) from the gateway's last `windowOutcomes` answers and timeouts, not a time window:
 *     success = clamp((rate − 0.5) / 0.45)                       1 at ≥ 95 % technical success, 0 at ≤ 50 %
 *     latency = clamp(1 − (mean − ¼·timeout) / (½·timeout))      1 below a quarter of the timeout, 0 at ¾
 *     factor  = max(floor, success × latency)
 *
 * Why these three parts:
 * - (a) is outlier detection as proxies do it (Envoy's `consecutive_5xx`): it
 *   needs no traffic rate, so one payment a minute is protected as well as a
 *   thousand a second. A hung gateway produces one outcome per timeout, which
 *   a time window never collects enough of at low traffic.
 * - (b) is the failure-rate window (opossum) that catches a gateway failing
 *   some, not all, payments at high traffic.
 * - the factor moves traffic away from a gateway that is slow or failing
 *   some payments before either trips, and never to zero, so it can prove it
 *   healed. It is counted over outcomes, not time, for the same reason as (a).
 *   A slow gateway whose answers arrive in time is only weighted down: slow
 *   answers are successes, so they never add to the streak or the window.
 *
 * Ejection by (a) never empties a region: at most `maxEjectionPercent` of the
 * enabled, available gateways serving each region of the gateway may be out
 * (open or half-open) at once, and never all of them. A suppressed ejection
 * is logged, counted and shown in `explain`, and the next failure asks again.
 *
 * All times are the gateway's own: outcomes carry the time the answer
 * reached Kafka and timeouts fire only when the gateway was really silent
 * (orchestrator/timeouts), so our own lag never counts against a gateway.
 *
 * Every state change is logged at critical level with its reason and
 * reported through `onChange` (published on the health topic); changes other
 * instances published are applied with `applyRemote` and not published again,
 * so all instances converge and nothing echoes. The streak and the factor are
 * per instance.
 */

export type BreakerState = GatewayHealthChanged['breaker'];

export interface BreakerSettings {
  /** Failure share (percent) over the rolling window that opens the breaker. */
  errorThresholdPercentage: number;
  /** Outcomes needed in the window before the share is trusted. */
  volumeThreshold: number;
  /** Length of the failure-rate window, in ms. */
  rollingWindowMs: number;
  /** The first ejection's length, in ms: how long an open breaker waits before a half-open trial. */
  resetTimeoutMs: number;
}

export interface OutlierSettings {
  /** Technical failures in a row that eject a gateway; 0 turns this off. */
  consecutiveFailures: number;
  /** The longest ejection, in ms: the n-th ejection in a row lasts min(resetTimeoutMs × n, maxEjectionMs). */
  maxEjectionMs: number;
  /** Share (percent, 0–100) of a region's routable gateways that consecutive failures may eject at once. */
  maxEjectionPercent: number;
}

export interface WeightSettings {
  /** Outcomes (answers and timeouts) each gateway's factor is computed over. */
  windowOutcomes: number;
  /** The lowest factor, so a degraded gateway still gets a trickle that lets it prove it healed. */
  floor: number;
}

export interface GatewayHealthSettings {
  breaker: BreakerSettings;
  outlier: OutlierSettings;
  weights: WeightSettings;
}

export const DEFAULT_BREAKER_SETTINGS: BreakerSettings = {
  errorThresholdPercentage: 50,
  volumeThreshold: 5,
  rollingWindowMs: 10_000,
  resetTimeoutMs: 5_000,
};
export const DEFAULT_OUTLIER_SETTINGS: OutlierSettings = { consecutiveFailures: 3, maxEjectionMs: 60_000, maxEjectionPercent: 50 };
export const DEFAULT_WEIGHT_SETTINGS: WeightSettings = { windowOutcomes: 20, floor: 0.1 };
export const DEFAULT_HEALTH_SETTINGS: GatewayHealthSettings = {
  breaker: DEFAULT_BREAKER_SETTINGS,
  outlier: DEFAULT_OUTLIER_SETTINGS,
  weights: DEFAULT_WEIGHT_SETTINGS,
};

export type Outcome = 'ok' | 'technical-failure';

/** Why the state last changed. */
export type ChangeReason =
  | 'initial'
  | 'consecutive-failures'
  | 'failure-rate'
  | 'trial-failed'
  | 'trial-succeeded'
  | 'ejection-over'
  | 'remote';

/** One state change, as logged, published and explained. */
export interface HealthChange {
  state: BreakerState;
  reason: ChangeReason;
  /** When it changed (ISO 8601). */
  at: string;
  /** When an open state turns half-open (ISO 8601); only for `open`. */
  ejectedUntil?: string;
  /** Ejections in a row, this one included. */
  ejections: number;
  /** Human-readable: why, in one sentence. */
  detail: string;
}

/** Everything `GET /v1/routing` says about one gateway's health. */
export interface HealthExplanation {
  state: BreakerState;
  lastChange: HealthChange;
  /** Technical failures in a row seen while closed. */
  consecutiveFailures: number;
  /** An ejection by consecutive failures the region's cap refused, if the streak is still running. */
  ejectionSuppressed?: { at: string; region: string; detail: string };
  window: {
    /** Outcomes held (at most `windowOutcomes`). */
    outcomes: number;
    /** Technical success share of the held outcomes (0–1); 1 when none. */
    successRate: number;
    /** Mean gateway latency of the held answers, in ms; null when none. */
    meanLatencyMs: number | null;
  };
  /** The multiplier on the rule weight (floor–1). */
  factor: number;
}

export interface GatewayHealthDeps {
  /** Told of every local state change (to publish it); not of changes applied from other instances. */
  onChange: (gatewayId: string, state: BreakerState, change: HealthChange) => void;
  /** Told when the region cap keeps a gateway in (to count it). */
  onEjectionSuppressed?: (gatewayId: string, region: string) => void;
  /** The rules in force: which gateways serve which region, for the ejection cap. */
  rules: () => readonly GatewayRule[];
  logger: Logger;
  /** Epoch ms; opossum's own timers use the real clock, so tests fake both. */
  now?: () => number;
}

interface Sample {
  ok: boolean;
  /** Gateway latency in ms; absent for a timeout. */
  latencyMs?: number;
}

interface Entry {
  breaker: CircuitBreaker<[Outcome], void>;
  /** Epoch ms until which a half-open trial is claimed. */
  trialHeldUntil: number;
  streak: number;
  ejections: number;
  closedAt: number;
  /** Set just before this module opens or closes the breaker itself, so the event handler knows why. */
  pendingReason?: ChangeReason;
  lastState: BreakerState;
  lastChange: HealthChange;
  suppressed?: HealthExplanation['ejectionSuppressed'];
  /** Ring buffer of the last `windowOutcomes` outcomes. */
  samples: Sample[];
  next: number;
  /** Epoch ms of this instance's latest own outcome: a remote state older than it does not override it. */
  lastOwnOutcomeAt?: number;
}

const clamp = (value: number) => Math.min(1, Math.max(0, value));

/** How many of `count` routable gateways serving a region may be ejected at once: never all of them. */
export const ejectionAllowance = (count: number, percent: number): number => Math.min(count - 1, Math.floor((count * percent) / 100));

export function createGatewayHealth(settings: GatewayHealthSettings, deps: GatewayHealthDeps) {
  const { breaker: breakerSettings, outlier, weights } = settings;
  const now = deps.now ?? Date.now;
  const iso = (ms: number) => new Date(ms).toISOString();
  const entries = new Map<string, Entry>();
  let applyingRemote = false;

  /** The length of the next ejection of a gateway that has been ejected `ejections` times in a row. */
  const ejectionMs = (ejections: number) => Math.min(breakerSettings.resetTimeoutMs * (ejections + 1), Math.max(outlier.maxEjectionMs, breakerSettings.resetTimeoutMs));

  /**
   * Opossum reads `resetTimeout` when it opens, so setting it before anything
   * that may open the breaker makes that opening last as long as this
   * gateway's next ejection should. The typings hide `options`; it is public
   * in opossum's documented API (`breaker.options`).
   */
  const armEjectionTime = (entry: Entry) => {
    const ejections = now() - entry.closedAt >= outlier.maxEjectionMs && entry.lastState === 'closed' ? 0 : entry.ejections;
    (entry.breaker as unknown as { options: { resetTimeout: number } }).options.resetTimeout = ejectionMs(ejections);
  };

  const entry = (gatewayId: string): Entry => {
    const existing = entries.get(gatewayId);
    if (existing) return existing;
    const breaker = new CircuitBreaker<[Outcome], void>(
      async (outcome: Outcome) => {
        if (outcome === 'technical-failure') throw new Error('technical failure');
      },
      {
        name: gatewayId,
        timeout: false,
        errorThresholdPercentage: breakerSettings.errorThresholdPercentage,
        volumeThreshold: breakerSettings.volumeThreshold,
        rollingCountTimeout: breakerSettings.rollingWindowMs,
        resetTimeout: breakerSettings.resetTimeoutMs,
      },
    );
    const created: Entry = {
      breaker,
      trialHeldUntil: 0,
      streak: 0,
      ejections: 0,
      closedAt: now(),
      lastState: 'closed',
      lastChange: { state: 'closed', reason: 'initial', at: iso(now()), ejections: 0, detail: 'no state change seen yet' },
      samples: [],
      next: 0,
    };
    const changed = (state: BreakerState) => () => {
      const at = now();
      const reason: ChangeReason =
        created.pendingReason ??
        (state === 'open' ? (created.lastState === 'half-open' ? 'trial-failed' : 'failure-rate') : state === 'half-open' ? 'ejection-over' : 'trial-succeeded');
      created.pendingReason = undefined;
      created.trialHeldUntil = 0;
      if (state === 'open') {
        if (created.lastState === 'closed' && at - created.closedAt >= outlier.maxEjectionMs) created.ejections = 0;
        created.ejections += 1;
        created.streak = 0;
        created.suppressed = undefined;
      }
      if (state === 'closed') {
        created.closedAt = at;
        created.streak = 0;
        created.suppressed = undefined;
      }
      const resetTimeout = (breaker as unknown as { options: { resetTimeout: number } }).options.resetTimeout;
      const change: HealthChange = {
        state,
        reason,
        at: iso(at),
        ...(state === 'open' ? { ejectedUntil: iso(at + resetTimeout) } : {}),
        ejections: created.ejections,
        detail: describe(reason, state, created, resetTimeout),
      };
      created.lastState = state;
      created.lastChange = change;
      deps.logger.critical({ gatewayId, breaker: state, reason, ejectedUntil: change.ejectedUntil, ejections: change.ejections, remote: applyingRemote }, `gateway breaker ${state}: ${change.detail}`);
      if (!applyingRemote) deps.onChange(gatewayId, state, change);
    };
    breaker.on('open', changed('open'));
    breaker.on('halfOpen', changed('half-open'));
    breaker.on('close', changed('closed'));
    entries.set(gatewayId, created);
    return created;
  };

  const describe = (reason: ChangeReason, state: BreakerState, current: Entry, resetTimeoutMs: number): string => {
    const seconds = `${Math.round(resetTimeoutMs / 100) / 10} s`;
    switch (reason) {
      case 'consecutive-failures':
        return `${outlier.consecutiveFailures} technical failures in a row: ejected for ${seconds} (ejection ${current.ejections} in a row)`;
      case 'failure-rate':
        return `more than ${breakerSettings.errorThresholdPercentage} % of at least ${breakerSettings.volumeThreshold} outcomes in ${breakerSettings.rollingWindowMs} ms failed: ejected for ${seconds} (ejection ${current.ejections} in a row)`;
      case 'trial-failed':
        return `the half-open trial failed: ejected again for ${seconds} (ejection ${current.ejections} in a row)`;
      case 'trial-succeeded':
        return 'the half-open trial succeeded: back in selection';
      case 'ejection-over':
        return 'the ejection time is over: one trial attempt at a time may go';
      case 'remote':
        return `another orchestrator instance reported ${state}`;
      case 'initial':
        return 'no state change seen yet';
    }
  };

  const stateOf = (gatewayId: string): BreakerState => {
    const { breaker } = entry(gatewayId);
    if (breaker.opened) return 'open';
    if (breaker.halfOpen) return 'half-open';
    return 'closed';
  };

  /** The first region of the gateway where ejecting it would exceed the cap, if any. */
  const regionAtCap = (gatewayId: string): string | undefined => {
    const rules = deps.rules();
    const routable = rules.filter((rule) => rule.enabled && rule.available);
    const own = routable.find((rule) => rule.gatewayId === gatewayId) ?? rules.find((rule) => rule.gatewayId === gatewayId);
    if (!own) return undefined;
    const named = [...new Set(routable.flatMap((rule) => rule.regions).filter((region) => region !== '*'))];
    // A gateway serving every region is checked against each region named anywhere (or against all of them as one).
    const regions = own.regions.includes('*') ? (named.length > 0 ? named : ['*']) : own.regions;
    for (const region of regions) {
      const serving = routable.filter((rule) => region === '*' || rule.regions.includes('*') || rule.regions.includes(region));
      const out = serving.filter((rule) => rule.gatewayId !== gatewayId && stateOf(rule.gatewayId) !== 'closed').length;
      const count = serving.some((rule) => rule.gatewayId === gatewayId) ? serving.length : serving.length + 1;
      if (out + 1 > ejectionAllowance(count, outlier.maxEjectionPercent)) return region;
    }
    return undefined;
  };

  const countStreak = (gatewayId: string, current: Entry, outcome: Outcome) => {
    if (outcome === 'ok') {
      current.streak = 0;
      current.suppressed = undefined;
      return;
    }
    // Only a closed gateway builds a streak: once open, late timeouts of attempts sent earlier say nothing new.
    if (current.lastState !== 'closed' || stateOf(gatewayId) !== 'closed') return;
    current.streak += 1;
    if (outlier.consecutiveFailures === 0 || current.streak < outlier.consecutiveFailures) return;
    const region = regionAtCap(gatewayId);
    if (region !== undefined) {
      const detail = `${current.streak} technical failures in a row, but ejecting it would put more than ${outlier.maxEjectionPercent} % (or all) of region ${region}'s gateways out at once: kept in, weighted down`;
      if (!current.suppressed) deps.logger.critical({ gatewayId, region, streak: current.streak }, `gateway ejection suppressed: ${detail}`);
      current.suppressed = { at: iso(now()), region, detail };
      deps.onEjectionSuppressed?.(gatewayId, region);
      return;
    }
    armEjectionTime(current);
    current.pendingReason = 'consecutive-failures';
    current.breaker.open();
  };

  const observe = (current: Entry, sample: Sample) => {
    if (current.samples.length < weights.windowOutcomes) current.samples.push(sample);
    else current.samples[current.next] = sample;
    current.next = (current.next + 1) % weights.windowOutcomes;
    current.lastOwnOutcomeAt = now();
  };

  const windowOf = (gatewayId: string): HealthExplanation['window'] => {
    const samples = entries.get(gatewayId)?.samples ?? [];
    // One pass and no arrays: selection asks this of every eligible gateway for every payment it routes.
    let okOutcomes = 0;
    let latencies = 0;
    let latencySumMs = 0;
    for (const sample of samples) {
      if (sample.ok) okOutcomes++;
      if (sample.latencyMs !== undefined) {
        latencies++;
        latencySumMs += sample.latencyMs;
      }
    }
    return {
      outcomes: samples.length,
      successRate: samples.length === 0 ? 1 : okOutcomes / samples.length,
      meanLatencyMs: latencies === 0 ? null : latencySumMs / latencies,
    };
  };

  /** The health multiplier (floor–1) for a gateway whose attempts time out after `timeoutMs`. */
  const factorOf = (gatewayId: string, timeoutMs: number): number => {
    const window = windowOf(gatewayId);
    if (window.outcomes === 0) return 1;
    const success = clamp((window.successRate - 0.5) / 0.45);
    const latency = window.meanLatencyMs === null ? 1 : clamp(1 - (window.meanLatencyMs - timeoutMs / 4) / (timeoutMs / 2));
    return Math.max(weights.floor, success * latency);
  };

  return {
    stateOf,
    /** Whether selection may use this gateway now: closed, or half-open with no trial claimed. */
    admits(gatewayId: string, nowMs: number): boolean {
      const state = stateOf(gatewayId);
      return state === 'closed' || (state === 'half-open' && entry(gatewayId).trialHeldUntil <= nowMs);
    },
    /** Claims the half-open trial for `holdMs` (always true when closed); false if it is taken or the breaker is open. */
    tryAcquireTrial(gatewayId: string, nowMs: number, holdMs: number): boolean {
      const state = stateOf(gatewayId);
      if (state === 'closed') return true;
      if (state === 'open' || entry(gatewayId).trialHeldUntil > nowMs) return false;
      entry(gatewayId).trialHeldUntil = nowMs + holdMs;
      return true;
    },
    /** Gives back a trial claimed for an attempt that was not sent after all. */
    releaseTrial(gatewayId: string): void {
      entry(gatewayId).trialHeldUntil = 0;
    },
    /**
     * Records one technical outcome: `ok` for an answer (success or business
     * decline), `technical-failure` for a timeout or retryable error, with
     * the gateway's latency in ms for an answer (none for a timeout: a
     * first timeout must not make a gateway look as slow as its timeout).
     */
    record(gatewayId: string, outcome: Outcome, latencyMs?: number): void {
      const current = entry(gatewayId);
      observe(current, latencyMs === undefined ? { ok: outcome === 'ok' } : { ok: outcome === 'ok', latencyMs });
      countStreak(gatewayId, current, outcome);
      armEjectionTime(current);
      // An open breaker rejects the fire without counting it; that rejection is expected.
      current.breaker.fire(outcome).catch(() => undefined);
    },
    factorOf,
    /** The weight selection uses: the rule's weight scaled by health, rounded to keep it explainable. */
    effectiveWeight(gatewayId: string, weight: number, timeoutMs: number): number {
      return Math.round(weight * factorOf(gatewayId, timeoutMs) * 1000) / 1000;
    },
    /** Everything known about a gateway's health, for `GET /v1/routing`. */
    explain(gatewayId: string, timeoutMs: number): HealthExplanation {
      const current = entry(gatewayId);
      return {
        state: stateOf(gatewayId),
        lastChange: current.lastChange,
        consecutiveFailures: current.streak,
        ...(current.suppressed ? { ejectionSuppressed: current.suppressed } : {}),
        window: windowOf(gatewayId),
        factor: Math.round(factorOf(gatewayId, timeoutMs) * 1000) / 1000,
      };
    },
    /**
     * A state another instance published at `occurredAtMs` (already checked as signed and unexpired by the
     * caller). This instance's own evidence decides once it has some: a remote state older than its latest own
     * outcome of the gateway changes nothing.
     */
    applyRemote(gatewayId: string, state: BreakerState, occurredAtMs?: number): void {
      const current = entry(gatewayId);
      if (occurredAtMs !== undefined && current.lastOwnOutcomeAt !== undefined && current.lastOwnOutcomeAt >= occurredAtMs) {
        deps.logger.info({ gatewayId, breaker: state, occurredAt: iso(occurredAtMs), lastOwnOutcomeAt: iso(current.lastOwnOutcomeAt) }, 'remote breaker state ignored: our own evidence is newer');
        return;
      }
      applyingRemote = true;
      try {
        // Half-open is each instance's own timer running out; only open and closed are shared.
        if (state === 'open' && !current.breaker.opened) {
          armEjectionTime(current);
          current.pendingReason = 'remote';
          current.breaker.open();
        } else if (state === 'closed' && !current.breaker.closed) {
          current.pendingReason = 'remote';
          current.breaker.close();
        }
      } finally {
        current.pendingReason = undefined;
        applyingRemote = false;
      }
    },
    shutdown(): void {
      for (const { breaker } of entries.values()) breaker.shutdown();
    },
  };
}
export type GatewayHealth = ReturnType<typeof createGatewayHealth>;
