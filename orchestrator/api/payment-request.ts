import { z } from 'zod';
import { paymentType, region } from '../../topics/envelope';

/** Currencies accepted, with their minor units (ISO 4217); amounts are integers in those units. */
export const CURRENCY_MINOR_UNITS: Readonly<Record<string, number>> = {
  EUR: 2,
  USD: 2,
  GBP: 2,
  CHF: 2,
  JPY: 0,
};

/** The body of POST /v1/payments; unknown fields are refused so a typo is not silently ignored. */
export const paymentRequest = z.strictObject({
  type: paymentType,
  accountId: z.string().min(1).max(64).regex(/^[A-Za-z0-9._:-]+$/, 'letters, digits and . _ : - only'),
  amount: z
    .string({ error: 'a string of digits: integer minor units, never a JSON number' })
    .regex(/^[1-9][0-9]{0,17}$/, 'a positive whole number of minor units, as a string of digits (e.g. "10000" for 100.00)'),
  currency: z.string().refine((code) => code in CURRENCY_MINOR_UNITS, {
    error: `one of ${Object.keys(CURRENCY_MINOR_UNITS).join(', ')}`,
  }),
  region,
});
export type PaymentRequest = z.infer<typeof paymentRequest>;

export const idempotencyKey = z
  .string({ error: 'required header' })
  .min(1)
  .max(100)
  .regex(/^[A-Za-z0-9._:-]+$/, 'letters, digits and . _ : - only');
