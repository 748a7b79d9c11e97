import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';

/**
 * Control-plane events (rule events from the back office, breaker states from
 * the orchestrators) steer where money goes, so a consumer must know who
 * wrote them: each one carries, in this Kafka header, an HMAC-SHA256 (hex)
 * over its key and value with a key shared by the writers and the readers.
 * The value carries the event's version (rules) or expiry (health), so the
 * signature covers the key, the version and the body: a message cannot be
 * moved to another key, nor its version or expiry edited.
 *
 * A signature authenticates, it does not make an event fresh: readers also
 * apply a rule only when its version is above the one they hold, and a
 * breaker state only until its expiry (ADR 0016).
 */
export const SIGNATURE_HEADER = 'x-signature';

/** Public (it is in this repository): production mode refuses it. */
export const DEVELOPMENT_RULES_KEY = 'development-only-rules-signing-key-0123456789';
/** Public (it is in this repository): production mode refuses it. */
export const DEVELOPMENT_HEALTH_KEY = 'development-only-health-signing-key-0123456789';

export const signingEnv = {
  /** HMAC key that signs rule events; shared by the back office and the orchestrators. */
  RULES_SIGNING_KEY: z.string().min(32, 'at least 32 characters').default(DEVELOPMENT_RULES_KEY),
};

export const healthSigningEnv = {
  /** HMAC key that signs breaker states on the health topic; shared by the orchestrator instances. */
  HEALTH_SIGNING_KEY: z.string().min(32, 'at least 32 characters').default(DEVELOPMENT_HEALTH_KEY),
};

/** Stops a production start that would sign health events with the public development key. */
export const refuseDevelopmentHealthKeyInProduction = <T extends { APP_ENV: string; HEALTH_SIGNING_KEY: string }>(config: T, ctx: z.RefinementCtx): void => {
  if (config.APP_ENV === 'production' && config.HEALTH_SIGNING_KEY === DEVELOPMENT_HEALTH_KEY) {
    ctx.addIssue({ code: 'custom', path: ['HEALTH_SIGNING_KEY'], message: 'production mode needs its own health signing key, not the development one' });
  }
};

const mac = (key: string, messageKey: string, value: string | Buffer | null) =>
  createHmac('sha256', key)
    .update(messageKey)
    .update('\n')
    .update(value ?? '')
    .digest();

export function signMessage(key: string, messageKey: string, value: string | Buffer | null): string {
  return mac(key, messageKey, value).toString('hex');
}

export function verifyMessage(key: string, messageKey: string, value: Buffer | null, signature: string | undefined): boolean {
  if (!signature || !/^[0-9a-f]{64}$/.test(signature)) return false;
  return timingSafeEqual(mac(key, messageKey, value), Buffer.from(signature, 'hex'));
}

/** The authenticity check a follower of a signed topic applies: undefined when signed with `key`, else the reason. */
export const signatureCheck =
  (key: string) =>
  ({ key: messageKey, raw, headers }: { key: string; raw: Buffer | null; headers: Record<string, string | undefined> }): string | undefined =>
    verifyMessage(key, messageKey, raw, headers[SIGNATURE_HEADER]) ? undefined : 'bad-signature';

/** The check of the rule topic (signed by the back office). */
export const ruleSignatureCheck = signatureCheck;
