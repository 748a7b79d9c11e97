import type { Router } from '../routing/router';
import type { Effect } from '../state/payment';

/**
 * Runs a decision and, if it dispatches, takes budget from the chosen
 * gateway's shared rate limit; when that budget is spent the router now
 * excludes the gateway, so deciding again picks another (or none). Each retry
 * excludes one more gateway, so this ends within the number of gateways.
 */
export async function decideWithinBudget<T>(router: Router, decideOnce: () => T, effectsOf: (result: T) => readonly Effect[]): Promise<T> {
  for (;;) {
    const result = decideOnce();
    const dispatch = effectsOf(result).find((effect) => effect.type === 'dispatch');
    if (!dispatch || (await router.reserve(dispatch.attempt.gatewayId))) return result;
  }
}
