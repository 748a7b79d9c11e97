import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';

/**
 * Rule events say which gateways may move money, so a consumer must know
 * they came from the back office: each one carries, in this Kafka header, an
 * HMAC-SHA256 (hex) over its key and value with a key shared by the back
 * office (and the seed command) and the orchestrators. A tombstone is signed
 * over its key and an empty value.
 *
 * It authenticates the message, not its freshness: a signed event replayed
 * from the topic's past is accepted; the rule's version and the compacted
 * topic's latest value are what keep the view current.
 */
export const SIGNATURE_HEADER = 'x-signature';

/** Public (it is in this repository): production mode refuses it. */
export const DEVELOPMENT_RULES_KEY = 'development-only-rules-signing-key-0123456789';

export const signingEnv = {
  /** HMAC key that signs rule events; shared by the back office and the orchestrators. */
  RULES_SIGNING_KEY: z.string().min(32, 'at least 32 characters').default(DEVELOPMENT_RULES_KEY),
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

/** The authenticity check a follower of the rule topic applies: undefined when signed with `key`, else the reason. */
export const ruleSignatureCheck =
  (key: string) =>
  ({ key: messageKey, raw, headers }: { key: string; raw: Buffer | null; headers: Record<string, string | undefined> }): string | undefined =>
    verifyMessage(key, messageKey, raw, headers[SIGNATURE_HEADER]) ? undefined : 'bad-signature';
