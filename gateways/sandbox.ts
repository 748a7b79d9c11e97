import { z } from 'zod';
import type { AttemptRequested } from '../topics/schemas';

/**
 * The sandbox PSP's behaviour, changeable at run time:
 * - healthy: approves after `latencyMs`
 * - decline: a final business decline (insufficient funds) for a share `rate` of payments
 * - error: a retryable technical error for a share `rate` of payments
 * - hang: never answers a share `rate` of payments
 */
export const sandboxSettings = z.strictObject({
  mode: z.enum(['healthy', 'decline', 'error', 'hang']).default('healthy'),
  latencyMs: z.coerce.number().int().min(0).max(600_000).default(0),
  rate: z.coerce.number().min(0).max(1).default(1),
});
export type SandboxSettings = z.infer<typeof sandboxSettings>;

export type AdapterAnswer =
  | { outcome: 'success'; gatewayReference: string }
  | { outcome: 'failure'; reasonCode: string }
  | { outcome: 'no-answer' };

/** What the gateway worker needs from a payment service provider. */
export interface GatewayAdapter {
  process(request: AttemptRequested): Promise<AdapterAnswer>;
}

export interface SandboxAdapter extends GatewayAdapter {
  settings(): SandboxSettings;
  configure(settings: SandboxSettings): void;
}

/** A fake PSP whose behaviour is set by `settings`; random and sleep are injected for tests. */
export function createSandboxAdapter(
  initial: SandboxSettings,
  deps: { random: () => number; sleep: (ms: number) => Promise<void> },
): SandboxAdapter {
  let current = initial;
  return {
    settings: () => current,
    configure: (settings) => {
      current = settings;
    },
    async process(request) {
      const { mode, latencyMs, rate } = current;
      if (latencyMs > 0) await deps.sleep(latencyMs);
      const affected = deps.random() < rate;
      if (affected && mode === 'decline') return { outcome: 'failure', reasonCode: 'insufficient_funds' };
      if (affected && mode === 'error') return { outcome: 'failure', reasonCode: 'gateway_error' };
      if (affected && mode === 'hang') return { outcome: 'no-answer' };
      return { outcome: 'success', gatewayReference: `sbx-${request.attemptId}` };
    },
  };
}
