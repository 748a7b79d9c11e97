import { mintToken, type TokenSettings } from '../../runtime/auth';
import { AppError } from '../../runtime/errors';
import type { PaymentView, ReviewList } from '../../orchestrator/api/views';

/** How long one call to the orchestrator may take before the back office answers 502. */
const CALL_TIMEOUT_MS = 5_000;
/** The back office's own token lives this long, and is minted again a minute before it ends. */
const TOKEN_LIFETIME_MS = 5 * 60_000;

/**
 * Reads payments in review through the orchestrator's public API (`GET
 * /v1/reviews`, `GET /v1/payments/:id`), never its Redis keys: the back office
 * depends on the orchestrator's documented contract, not on how it stores
 * state (ADR 0018). It calls with a short-lived `payments:read` token of its
 * own (subject `backoffice`), signed with the key it already holds to check
 * operators' tokens.
 */
export function createOrchestratorClient({ baseUrl, tokens, clock }: { baseUrl: string; tokens: TokenSettings; clock: () => Date }) {
  let current: { token: string; renewAtMs: number } | undefined;
  const token = async () => {
    const now = clock().getTime();
    if (!current || current.renewAtMs <= now) {
      current = { token: await mintToken(tokens, 'backoffice', ['payments:read'], `${TOKEN_LIFETIME_MS / 1000}s`), renewAtMs: now + TOKEN_LIFETIME_MS - 60_000 };
    }
    return current.token;
  };

  const get = async (path: string): Promise<Response> => {
    try {
      return await fetch(`${baseUrl}${path}`, { headers: { authorization: `Bearer ${await token()}` }, signal: AbortSignal.timeout(CALL_TIMEOUT_MS) });
    } catch (error) {
      throw new AppError(502, 'orchestrator_unavailable', `the orchestrator did not answer (${error instanceof Error ? error.message : String(error)}); nothing was changed`);
    }
  };
  const unexpected = (path: string, status: number) => new AppError(502, 'orchestrator_unavailable', `the orchestrator answered ${status} to GET ${path}; nothing was changed`);

  return {
    /** Payments flagged for review, as the orchestrator lists them. */
    async reviews(): Promise<PaymentView[]> {
      const response = await get('/v1/reviews');
      if (response.status !== 200) throw unexpected('/v1/reviews', response.status);
      return ((await response.json()) as ReviewList).payments;
    },
    /** One payment, or undefined when the orchestrator does not know it. */
    async payment(paymentId: string): Promise<PaymentView | undefined> {
      const path = `/v1/payments/${encodeURIComponent(paymentId)}`;
      const response = await get(path);
      if (response.status === 404) return undefined;
      if (response.status !== 200) throw unexpected(path, response.status);
      return (await response.json()) as PaymentView;
    },
  };
}
export type OrchestratorClient = ReturnType<typeof createOrchestratorClient>;
