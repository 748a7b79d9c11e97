import type { RequestHandler } from 'express';
import type { Principal } from '../../runtime/auth';
import { errorBody } from '../../runtime/http';
import type { Admission } from '../admission/admission';
import type { OrchestratorMetrics } from '../metrics';
import type { PaymentStore } from '../state/store';
import { idempotencyKey } from './payment-request';

export interface AdmissionGateDeps {
  admission: Pick<Admission, 'refusal' | 'refused'>;
  store: Pick<PaymentStore, 'findIdempotent'>;
  metrics: Pick<OrchestratorMetrics, 'paymentsRejected'>;
}

/**
 * `POST /v1/payments` under overload, before the body is read: when admission
 * control refuses new work, a request whose Idempotency-Key is new gets
 * `503 overloaded` with Retry-After and nothing is written; a replay of an
 * existing payment (and a malformed key, which the route names in its 400)
 * goes on to the route as usual. Placed ahead of body parsing and validation
 * because under overload refusals are most of the traffic: each costs the
 * token check (cached), one Redis GET and the answer, and the payments
 * already accepted keep the CPU (issue 11: the excess refused within 50 ms).
 * Runs after `requireScope`, which puts the principal in `res.locals`.
 */
export function admissionGate({ admission, store, metrics }: AdmissionGateDeps): RequestHandler {
  return async (req, res, next) => {
    const refusal = admission.refusal();
    if (!refusal) return next();
    const key = idempotencyKey.safeParse(req.get('Idempotency-Key'));
    // Idempotency keys are scoped to the caller, as in the route.
    if (!key.success || (await store.findIdempotent({ caller: (res.locals.principal as Principal).subject, key: key.data }))) return next();
    admission.refused(refusal.signal);
    metrics.paymentsRejected.inc({ reason: 'overloaded' });
    res.set('Retry-After', String(refusal.retryAfterSeconds)).status(503).json(errorBody('overloaded', refusal.message));
  };
}
