import CircuitBreaker from 'opossum';
import type { Logger } from '../../runtime/logger';
import type { GatewayHealthChanged } from '../../topics/schemas';

export type BreakerState = GatewayHealthChanged['breaker'];

export interface BreakerSettings {
  /** Failure share (percent) over the rolling window that opens the breaker. */
  errorThresholdPercentage: number;
  /** Outcomes needed in the window before the share is trusted. */
  volumeThreshold: number;
  rollingWindowMs: number;
  /** How long an open breaker waits before letting a trial through (half-open). */
  resetTimeoutMs: number;
}

export const DEFAULT_BREAKER_SETTINGS: BreakerSettings = {
  errorThresholdPercentage: 50,
  volumeThreshold: 5,
  rollingWindowMs: 10_000,
  resetTimeoutMs: 5_000,
};

type Outcome = 'ok' | 'technical-failure';

/**
 * One opossum breaker per gateway, fed by attempt outcomes as they are
 * processed (the gateway is called through Kafka, so there is no call to
 * wrap: each outcome is "fired" through the breaker as a resolved or rejected
 * promise). Timeouts and retryable failures count as failures; business
 * declines count as successes, since the gateway worked.
 *
 * While half-open, one trial attempt may be in flight; its outcome closes or
 * re-opens the breaker. The trial is claimed when the gateway is picked (not
 * when the attempt is sent), so a burst cannot send several, and the claim
 * expires, so a trial that never went out does not block the gateway.
 *
 * Local state changes are reported through `onChange` (to the health topic);
 * changes other instances reported are applied with `applyRemote` without
 * being reported again, so all instances converge and nothing echoes.
 */
export function createBreakers(settings: BreakerSettings, onChange: (gatewayId: string, state: BreakerState) => void, logger: Logger) {
  const breakers = new Map<string, { breaker: CircuitBreaker<[Outcome], void>; trialHeldUntil: number }>();
  let applyingRemote = false;

  const entry = (gatewayId: string) => {
    let existing = breakers.get(gatewayId);
    if (existing) return existing;
    const breaker = new CircuitBreaker<[Outcome], void>(
      async (outcome: Outcome) => {
        if (outcome === 'technical-failure') throw new Error('technical failure');
      },
      {
        name: gatewayId,
        timeout: false,
        errorThresholdPercentage: settings.errorThresholdPercentage,
        volumeThreshold: settings.volumeThreshold,
        rollingCountTimeout: settings.rollingWindowMs,
        resetTimeout: settings.resetTimeoutMs,
      },
    );
    const created = { breaker, trialHeldUntil: 0 };
    const changed = (state: BreakerState) => () => {
      created.trialHeldUntil = 0;
      logger.critical({ gatewayId, breaker: state, remote: applyingRemote }, `gateway breaker ${state}`);
      if (!applyingRemote) onChange(gatewayId, state);
    };
    breaker.on('open', changed('open'));
    breaker.on('halfOpen', changed('half-open'));
    breaker.on('close', changed('closed'));
    breakers.set(gatewayId, created);
    existing = created;
    return existing;
  };

  const stateOf = (gatewayId: string): BreakerState => {
    const { breaker } = entry(gatewayId);
    if (breaker.opened) return 'open';
    if (breaker.halfOpen) return 'half-open';
    return 'closed';
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
    record(gatewayId: string, outcome: Outcome): void {
      // An open breaker rejects the fire without counting it; that rejection is expected.
      entry(gatewayId)
        .breaker.fire(outcome)
        .catch(() => undefined);
    },
    applyRemote(gatewayId: string, state: BreakerState): void {
      const { breaker } = entry(gatewayId);
      applyingRemote = true;
      try {
        // Half-open is each instance's own timer running out; only open and closed are shared.
        if (state === 'open') breaker.open();
        else if (state === 'closed') breaker.close();
      } finally {
        applyingRemote = false;
      }
    },
    shutdown(): void {
      for (const { breaker } of breakers.values()) breaker.shutdown();
    },
  };
}
export type Breakers = ReturnType<typeof createBreakers>;
