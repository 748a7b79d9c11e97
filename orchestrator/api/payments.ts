import type { Express, Request } from 'express';
import { AppError } from '../../runtime/errors';
import { parseOr400 } from '../../runtime/http';
import type { AcceptPayment } from '../dispatch/accept';
import type { Payment } from '../state/payment';
import type { PaymentStore } from '../state/store';
import { idempotencyKey, paymentRequest } from './payment-request';

export function paymentRoutes(app: Express, deps: { acceptPayment: AcceptPayment; store: PaymentStore; routing: () => unknown }): void {
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

  /** Withdrawals left PENDING because a timed-out gateway never confirmed a cancel: a person decides. */
  app.get('/v1/reviews', async (_req, res) => {
    const flagged = await deps.store.flaggedForReview();
    res.json({ payments: flagged.map(view) });
  });

  /** The routing view of this instance: rules in force, breaker states and effective weights. */
  app.get('/v1/routing', (_req, res) => {
    res.json(deps.routing());
  });
}

/** The payment as the platform sees it. */
function view(payment: Payment) {
  const { statusSequence: _sequence, ...visible } = payment;
  return visible;
}
