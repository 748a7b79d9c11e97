import { z } from 'zod';
import { paymentType, region } from '../../topics/envelope';
import { paymentStatus } from '../../topics/schemas';

/**
 * Currencies accepted: their minor units (ISO 4217) and the amount bounds of
 * one payment, in those minor units. Amounts are integers of minor units
 * carried as strings, never floats.
 */
export const CURRENCIES: Readonly<Record<string, { minorUnits: number; min: bigint; max: bigint }>> = {
  EUR: { minorUnits: 2, min: 100n, max: 100_000_000n },
  USD: { minorUnits: 2, min: 100n, max: 100_000_000n },
  GBP: { minorUnits: 2, min: 100n, max: 100_000_000n },
  CHF: { minorUnits: 2, min: 100n, max: 100_000_000n },
  JPY: { minorUnits: 0, min: 100n, max: 150_000_000n },
};

const accountId = z.string().min(1).max(64).regex(/^[A-Za-z0-9._:-]+$/, 'letters, digits and . _ : - only');

/** The body of POST /v1/payments; unknown fields are refused so a typo is not silently ignored. */
export const paymentRequest = z
  .strictObject({
    type: paymentType,
    accountId,
    amount: z
      .string({ error: 'a string of digits: integer minor units, never a JSON number' })
      .regex(/^[1-9][0-9]{0,17}$/, 'a positive whole number of minor units, as a string of digits (e.g. "10000" for 100.00)'),
    currency: z.string().refine((code) => code in CURRENCIES, { error: `one of ${Object.keys(CURRENCIES).join(', ')}` }),
    region,
  })
  .superRefine((request, ctx) => {
    const bounds = CURRENCIES[request.currency];
    // zod 4 runs this refinement even when a field failed: only judge a well-formed amount.
    if (!bounds || !/^[1-9][0-9]{0,17}$/.test(request.amount)) return;
    const amount = BigInt(request.amount);
    if (amount < bounds.min || amount > bounds.max) {
      ctx.addIssue({
        code: 'custom',
        path: ['amount'],
        message: `between ${bounds.min} and ${bounds.max} minor units of ${request.currency}`,
      });
    }
  });
export type PaymentRequest = z.infer<typeof paymentRequest>;

export const idempotencyKey = z
  // Only an absent header is "required": a schema-wide message would also stand for every check below.
  .string({ error: (issue) => (issue.input === undefined ? 'required header' : 'a string') })
  .min(1, 'must not be empty')
  .max(100, 'too long: at most 100 characters')
  .regex(/^[A-Za-z0-9._:-]+$/, 'letters, digits and . _ : - only');

/** `Prefer: wait=N` (RFC 7240): how long the caller will wait for a terminal state, in seconds. */
export const preferWait = z
  .string()
  .regex(/^\s*wait=\d{1,5}\s*$/, 'wait=N with N in seconds')
  .transform((value) => Number(value.split('=')[1]));

/** Query of GET /v1/payments. */
export const listQuery = z.strictObject({
  accountId,
  status: paymentStatus.optional(),
  // Digits only: Number() would also read `1e1`, `0x10`, ` 5` or `5.0`, which no client means as a page size.
  limit: z
    .string({ error: 'a whole number 1-100, given once' })
    .regex(/^[0-9]{1,6}$/, 'a whole number 1-100, digits only')
    .transform(Number)
    .pipe(z.number().int().min(1).max(100))
    .default(50),
  cursor: z.string().max(200).regex(/^[A-Za-z0-9_-]+$/, 'a cursor returned by a previous page').optional(),
});
