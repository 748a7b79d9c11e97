import { z } from 'zod';

/**
 * Every message on every topic carries these fields, so a consumer can
 * de-duplicate (eventId), route (type), order and age (occurredAt), and
 * evolve the contract (schemaVersion).
 */
export const envelope = <T extends string>(type: T, schemaVersion = 1) =>
  z.object({
    eventId: z.string().min(1).max(100),
    type: z.literal(type),
    occurredAt: z.string().datetime({ offset: true }),
    schemaVersion: z.literal(schemaVersion),
  });

export const ids = {
  paymentId: z.string().min(1).max(64),
  attemptId: z.string().min(1).max(80),
  gatewayId: z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/, 'lower-case letters, digits and dashes, at most 40'),
};

/** Money is an integer number of minor units carried as a decimal string, never a float. */
export const amountMinor = z
  .string()
  .regex(/^[1-9][0-9]{0,17}$/, 'a positive whole number of minor units, as a string of digits');

export const currency = z.string().regex(/^[A-Z]{3}$/, 'an ISO 4217 code such as EUR');
export const region = z.string().regex(/^[A-Z]{2,8}$/, 'an upper-case region code such as EU');
export const paymentType = z.enum(['deposit', 'withdrawal']);

/** An instant as `Date.prototype.toISOString` writes it: UTC, milliseconds, four-digit year. */
const NORMAL_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/**
 * A point in time from a gateway, read leniently (docs/topics.md, "What a
 * gateway may send"): ISO 8601 with a zone offset, or without one, which is
 * then read as UTC. Normalised to ISO 8601 in UTC. A gateway is an outside
 * system; a harmless format difference must not turn its answer into noise.
 */
export const gatewayInstant = z.preprocess(
  (value) => (typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?$/.test(value) ? `${value}Z` : value),
  // Already in the normal form (every gateway worker of this stack writes it): kept as it is, which is what the
  // round trip through Date would give, since `datetime` has checked the calendar (month lengths, leap days);
  // the round trip cost about 1 µs per instant, two per result (docs/benchmarks/efficiency.md, session 11).
  z.string().datetime({ offset: true }).transform((value) => (NORMAL_INSTANT.test(value) ? value : new Date(value).toISOString())),
);
