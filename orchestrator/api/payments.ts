import type { Express, Request } from 'express';
import { requireScope, type Principal, type TokenVerifier } from '../../runtime/auth';
import { AppError } from '../../runtime/errors';
import { parseOr400 } from '../../runtime/http';
import type { AcceptPayment } from '../dispatch/accept';
import { isTerminal, type Payment } from '../state/payment';
import type { PaymentStore } from '../state/store';
import { idempotencyKey, listQuery, paymentRequest, preferWait } from './payment-request';
import type { TerminalWaits } from './terminal-waits';

export interface PaymentRouteDeps {
  acceptPayment: AcceptPayment;
  store: PaymentStore;
  terminalWaits: TerminalWaits;
  verifyToken: TokenVerifier;
  /** Longest `Prefer: wait` honoured, in seconds. */
  maxWaitSeconds: number;
  routing: () => unknown;
}

const encodeCursor = (member: string) => Buffer.from(member).toString('base64url');
const decodeCursor = (cursor: string) => Buffer.from(cursor, 'base64url').toString('utf8');

export function paymentRoutes(app: Express, deps: PaymentRouteDeps): void {
  const canWrite = requireScope(deps.verifyToken, 'payments:write');
  const canRead = requireScope(deps.verifyToken, 'payments:read');

  app.post('/v1/payments', canWrite, async (req: Request, res) => {
    const key = parseOr400(idempotencyKey, req.get('Idempotency-Key'), 'Idempotency-Key');
    const prefer = req.get('Prefer');
    const waitSeconds = prefer === undefined ? 0 : Math.min(parseOr400(preferWait, prefer, 'Prefer'), deps.maxWaitSeconds);
    const body = parseOr400(paymentRequest, req.body ?? {});
    // Idempotency keys are scoped to the caller: two clients using the same key get two payments.
    const caller = (res.locals.principal as Principal).subject;
    let { payment } = await deps.acceptPayment(body, { caller, key });
    // Without a wait the answer is always 202 with the payment as it stands, so a repeated request
    // gets the same answer; with one, 200 says the state in the body is terminal.
    let status = 202;
    if (waitSeconds > 0) {
      payment = (await deps.terminalWaits.waitForTerminal(payment.id, waitSeconds * 1000)) ?? payment;
      res.set('Preference-Applied', `wait=${waitSeconds}`);
      if (isTerminal(payment.status)) status = 200;
    }
    res.status(status).location(`/v1/payments/${payment.id}`).json(view(payment));
  });

  app.get('/v1/payments', canRead, async (req: Request, res) => {
    const query = parseOr400(listQuery, req.query);
    const page = await deps.store.page({
      accountId: query.accountId,
      limit: query.limit,
      ...(query.status ? { status: query.status } : {}),
      ...(query.cursor ? { after: decodeCursor(query.cursor) } : {}),
    });
    res.json({ payments: page.payments.map(view), ...(page.hasMore && page.last ? { nextCursor: encodeCursor(page.last) } : {}) });
  });

  app.get('/v1/payments/:id', canRead, async (req: Request<{ id: string }>, res) => {
    const stored = await deps.store.get(req.params.id);
    if (!stored) throw new AppError(404, 'not_found', `no payment ${req.params.id}`, 'id');
    res.json(view(stored.payment));
  });

  /** Withdrawals left PENDING because a timed-out gateway never confirmed a cancel: a person decides. */
  app.get('/v1/reviews', canRead, async (_req, res) => {
    const flagged = await deps.store.flaggedForReview();
    res.json({ payments: flagged.map(view) });
  });

  /** The routing view of this instance: rules in force, breaker states and effective weights. */
  app.get('/v1/routing', canRead, (_req, res) => {
    res.json(deps.routing());
  });
}

/** The payment as the platform sees it. */
function view(payment: Payment) {
  const { statusSequence: _sequence, ...visible } = payment;
  return visible;
}
