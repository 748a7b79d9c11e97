import type { Express, Request } from 'express';
import type { z } from 'zod';
import { AppError } from '../../runtime/errors';
import type { AcceptPayment } from '../dispatch/accept';
import type { Payment } from '../state/payment';
import type { PaymentStore } from '../state/store';
import { idempotencyKey, paymentRequest } from './payment-request';

/** Parses with a zod schema, or answers 400 naming the first field at fault. */
function parseOr400<S extends z.ZodType>(schema: S, value: unknown, fieldPrefix?: string): z.infer<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const path = issue?.code === 'unrecognized_keys' ? issue.keys.join(',') : (issue?.path.join('.') ?? '');
  const field = fieldPrefix ?? (path || 'body');
  throw new AppError(400, 'invalid_request', `${field}: ${issue?.message ?? 'invalid'}`, field);
}

export function paymentRoutes(app: Express, deps: { acceptPayment: AcceptPayment; store: PaymentStore }): void {
  app.post('/v1/payments', async (req: Request, res) => {
    const key = parseOr400(idempotencyKey, req.get('Idempotency-Key'), 'Idempotency-Key');
    const body = parseOr400(paymentRequest, req.body ?? {});
    const { payment } = await deps.acceptPayment(body, key);
    res.status(202).location(`/v1/payments/${payment.id}`).json(view(payment));
  });

  app.get('/v1/payments/:id', async (req: Request<{ id: string }>, res) => {
    const stored = await deps.store.get(req.params.id);
    if (!stored) throw new AppError(404, 'not_found', `no payment ${req.params.id}`, 'id');
    res.json(view(stored.payment));
  });
}

/** The payment as the platform sees it. */
function view(payment: Payment) {
  const { statusSequence: _sequence, ...visible } = payment;
  return visible;
}
