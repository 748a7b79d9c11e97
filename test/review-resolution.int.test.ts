import { randomUUID } from 'node:crypto';
import { loadBackofficeConfig } from '../backoffice/config';
import { startBackoffice, type RunningBackoffice } from '../backoffice/main';
import { loadOrchestratorConfig } from '../orchestrator/config';
import { startOrchestrator, type RunningOrchestrator } from '../orchestrator/main';
import { DEVELOPMENT_SIGNING_KEY, mintToken } from '../runtime/auth';
import { DEVELOPMENT_RULES_KEY, SIGNATURE_HEADER, signMessage } from '../runtime/signing';
import type { ReviewResolved } from '../topics/schemas';
import { asService, fetchApi, testLogger } from './support/env';
import { checkPaymentInvariants } from './support/invariants';
import { deposit, getPayment, postPayment, rule, startTestStack, untilMetrics, untilPayment, watchStatuses, type PaymentView, type TestStack } from './support/stack';

/**
 * Two EU gateways: "first" hangs (it never answers an attempt nor the cancel that follows its timeout), "second" is
 * healthy. Selection always picks the first eligible one (random source 0), so every withdrawal goes to "first",
 * times out after 1 s, is asked to cancel, and is flagged for review 1 s later. Only "first" serves USD, so a USD
 * withdrawal has no gateway left after it.
 */
describe('review resolution', () => {
  let stack: TestStack;
  let statuses: Awaited<ReturnType<typeof watchStatuses>>;
  let backoffice: RunningBackoffice;
  let baseUrl: string;
  const tokens = { resolver: '', reader: '', rulesOperator: '' };
  // Every withdrawal times out at "first" on purpose: its breaker and outlier ejection must not take it out of routing.
  const orchestratorEnv = { TIMEOUT_POLL_MS: '20', OUTLIER_CONSECUTIVE_FAILURES: '1000', BREAKER_VOLUME_THRESHOLD: '1000' };

  beforeAll(async () => {
    stack = await startTestStack({
      rules: [rule('first', { timeoutMs: 1_000, currencies: ['EUR', 'USD'] }), rule('second', { timeoutMs: 1_000, currencies: ['EUR'] })],
      sandboxes: { first: { mode: 'hang' } },
      orchestrator: { random: () => 0, env: orchestratorEnv },
    });
    statuses = await watchStatuses(stack);
    backoffice = await startBackoffice(loadBackofficeConfig({ ...asService(stack.env, 'backoffice'), ORCHESTRATOR_URL: stack.baseUrl }), { logger: testLogger('backoffice') });
    baseUrl = `http://127.0.0.1:${backoffice.port}`;
    const settings = { secret: DEVELOPMENT_SIGNING_KEY, issuer: 'payment-orchestrator' };
    tokens.resolver = await mintToken(settings, 'ops-olga', ['reviews:read', 'reviews:resolve']);
    tokens.reader = await mintToken(settings, 'support-sam', ['reviews:read']);
    tokens.rulesOperator = await mintToken(settings, 'operator-ann', ['rules:read', 'rules:write']);
  }, 120_000);

  afterAll(async () => {
    if (stack) {
      const { violations } = await checkPaymentInvariants({
        kafka: stack.kafka,
        topics: stack.topics,
        redisUrl: stack.env.REDIS_URL ?? '',
        redisKeyPrefix: stack.env.REDIS_KEY_PREFIX ?? '',
        acceptedIds: statuses.events.filter((event) => event.status === 'PENDING').map((event) => event.paymentId),
      });
      expect(violations).toEqual([]);
    }
    await backoffice?.stop();
    await statuses?.stop();
    await stack?.stop();
  });

  /** A withdrawal sent to "first", once it is flagged for review. */
  async function withdrawalInReview(fields: Record<string, unknown> = {}): Promise<PaymentView> {
    const accepted = await postPayment(stack.baseUrl, deposit({ type: 'withdrawal', ...fields }));
    expect(accepted.status).toBe(202);
    return untilPayment(stack.baseUrl, String(accepted.body.id), (payment) => payment.review !== undefined);
  }

  async function resolve(at: string, paymentId: string, body: Record<string, unknown>, token = tokens.resolver) {
    const response = await fetch(`${at}/v1/reviews/${paymentId}/resolution`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> & { error?: { code: string; message: string; field?: string } } };
  }

  const resolution = (payment: PaymentView, decision: string, note = 'PSP support confirmed on the phone') => ({
    resolutionId: randomUUID(),
    attemptId: payment.review?.attemptId,
    decision,
    note,
  });

  async function reviewsListed(token = tokens.reader) {
    const response = await fetch(`${baseUrl}/v1/reviews`, { headers: { authorization: `Bearer ${token}` } });
    expect(response.status).toBe(200);
    return ((await response.json()) as { reviews: Array<{ paymentId: string; gatewayId: string; reason: string; attempt: { id: string }; lastWord: { text: string }; decisions: string[] }> }).reviews;
  }

  test('When a withdrawal is in review, then the back office lists it with the attempt, its gateway, the times and what the gateway last said', async () => {
    const payment = await withdrawalInReview();
    const listed = (await reviewsListed()).find((review) => review.paymentId === payment.id);
    expect(listed).toMatchObject({
      reason: 'cancel-unconfirmed',
      gatewayId: 'first',
      since: payment.review?.since,
      attempt: { id: payment.review?.attemptId, status: 'cancelling', dispatchedAt: payment.attempts[0]?.dispatchedAt, cancelUnconfirmedAt: payment.review?.since },
      decisions: ['paid', 'not-paid'],
    });
    expect(listed?.lastWord.text).toMatch(/^nothing: no answer/);
  });

  test('When an operator resolves a review as paid, then that attempt is the success: SUCCESS, no further attempt, and the resolution is audited', async () => {
    const payment = await withdrawalInReview();
    const body = resolution(payment, 'paid');

    const answer = await resolve(baseUrl, payment.id, body);

    expect(answer.status).toBe(200);
    expect(answer.body.resolution).toMatchObject({ id: body.resolutionId, decision: 'paid', actor: 'ops-olga', note: body.note, reason: 'cancel-unconfirmed' });
    const [terminal] = await statuses.untilTerminal([payment.id]);
    expect(terminal).toMatchObject({ status: 'SUCCESS', attemptId: body.attemptId, gatewayId: 'first' });
    const settled = await getPayment(stack.baseUrl, payment.id);
    expect(settled.status).toBe('SUCCESS');
    expect(settled.review).toBeUndefined();
    expect(settled.attempts.map((attempt) => [attempt.gatewayId, attempt.status])).toEqual([['first', 'succeeded']]);
    expect(settled.resolutions).toEqual([expect.objectContaining({ id: body.resolutionId, attemptId: body.attemptId, decision: 'paid', actor: 'ops-olga' })]);
    expect(statuses.events.filter((event) => event.paymentId === payment.id).map((event) => event.status)).toEqual(['PENDING', 'SUCCESS']);
    expect((await reviewsListed()).map((review) => review.paymentId)).not.toContain(payment.id);

    const audit = await fetch(`${baseUrl}/v1/reviews/${payment.id}/audit`, { headers: { authorization: `Bearer ${tokens.reader}` } });
    expect(((await audit.json()) as { entries: unknown[] }).entries).toEqual([
      expect.objectContaining({ actor: 'ops-olga', resolutionId: body.resolutionId, decision: 'paid', note: body.note, gatewayId: 'first', reviewReason: 'cancel-unconfirmed' }),
    ]);
    await untilMetrics(stack.baseUrl, /payment_review_resolutions_total\{decision="paid",result="applied",service="orchestrator"\} 1/);
  });

  test('When an operator resolves a review as not paid, then the withdrawal fails over to the other gateway and succeeds there', async () => {
    const payment = await withdrawalInReview();

    const answer = await resolve(baseUrl, payment.id, resolution(payment, 'not-paid', 'PSP says the payout was never sent'));

    expect(answer.status).toBe(200);
    const [terminal] = await statuses.untilTerminal([payment.id]);
    expect(terminal).toMatchObject({ status: 'SUCCESS', gatewayId: 'second' });
    const settled = await getPayment(stack.baseUrl, payment.id);
    expect(settled.attempts.map((attempt) => [attempt.gatewayId, attempt.status])).toEqual([
      ['first', 'cancelled'],
      ['second', 'succeeded'],
    ]);
    expect(statuses.events.filter((event) => event.paymentId === payment.id).map((event) => event.status)).toEqual(['PENDING', 'SUCCESS']);
  });

  test('When an operator resolves a review as not paid and no gateway is left, then the withdrawal is FAILURE with no-gateway-left', async () => {
    const payment = await withdrawalInReview({ currency: 'USD' });

    expect((await resolve(baseUrl, payment.id, resolution(payment, 'not-paid'))).status).toBe(200);

    const [terminal] = await statuses.untilTerminal([payment.id]);
    expect(terminal).toMatchObject({ status: 'FAILURE', reason: 'no-gateway-left', gatewayId: 'first' });
    expect((await getPayment(stack.baseUrl, payment.id)).attempts.map((attempt) => attempt.status)).toEqual(['cancelled']);
  });

  test('When the same resolution is sent twice, to two back offices in front of two orchestrator instances, and delivered twice on Kafka, then it applies once', async () => {
    const second: { orchestrator?: RunningOrchestrator; backoffice?: RunningBackoffice } = {};
    try {
      second.orchestrator = await startOrchestrator(loadOrchestratorConfig({ ...stack.env, ...orchestratorEnv, INSTANCE_ID: 'second-instance' }), { random: () => 0, logger: testLogger('orchestrator-2') });
      const secondUrl = `http://127.0.0.1:${second.orchestrator.port}`;
      second.backoffice = await startBackoffice(loadBackofficeConfig({ ...asService(stack.env, 'backoffice'), ORCHESTRATOR_URL: secondUrl, INSTANCE_ID: 'bo-2' }), { logger: testLogger('backoffice-2') });
      const secondBackoffice = `http://127.0.0.1:${second.backoffice.port}`;
      const payment = await withdrawalInReview();
      const body = resolution(payment, 'not-paid');

      const answers = await Promise.all([resolve(baseUrl, payment.id, body), resolve(secondBackoffice, payment.id, body), resolve(baseUrl, payment.id, body)]);
      expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200]);
      // Sent once more, later: the same resolution, answered with its outcome.
      const again = await resolve(secondBackoffice, payment.id, body);
      expect(again.status).toBe(200);
      expect(again.body.resolution).toEqual(answers[0]?.body.resolution);

      // The same signed command delivered again on the topic (an outbox relay after a crash): a duplicate.
      const command: ReviewResolved = {
        eventId: randomUUID(),
        type: 'review.resolved',
        occurredAt: new Date().toISOString(),
        schemaVersion: 1,
        resolutionId: body.resolutionId,
        paymentId: payment.id,
        attemptId: String(body.attemptId),
        decision: 'not-paid',
        actor: 'ops-olga',
        note: body.note,
      };
      await publishReviewCommand(payment.id, JSON.stringify(command), true);

      const [terminal] = await statuses.untilTerminal([payment.id]);
      expect(terminal).toMatchObject({ status: 'SUCCESS', gatewayId: 'second' });
      await untilMetricsSum([stack.baseUrl, secondUrl], 'payment_review_resolutions_total{decision="not-paid",result="duplicate"', 1);
      const settled = await getPayment(stack.baseUrl, payment.id);
      expect(settled.resolutions).toHaveLength(1);
      expect(settled.attempts).toHaveLength(2);
      expect(statuses.events.filter((event) => event.paymentId === payment.id).map((event) => event.status)).toEqual(['PENDING', 'SUCCESS']);
      const audit = await fetch(`${baseUrl}/v1/reviews/${payment.id}/audit`, { headers: { authorization: `Bearer ${tokens.reader}` } });
      expect(((await audit.json()) as { entries: unknown[] }).entries).toHaveLength(1);
    } finally {
      await second.backoffice?.stop();
      await second.orchestrator?.stop();
    }
  }, 60_000);

  test('When a resolution is refused (no note, wrong scope, payment not in review, wrong attempt or decision), then the answer names the field in the error shape and it is counted', async () => {
    const payment = await withdrawalInReview();
    const good = resolution(payment, 'not-paid');

    const noNote = await resolve(baseUrl, payment.id, { ...good, note: undefined });
    expect(noNote).toMatchObject({ status: 400, body: { error: { code: 'invalid_request', field: 'note', message: 'note: required: what the gateway confirmed, in a sentence' } } });
    expect((await resolve(baseUrl, payment.id, { ...good, note: '   ' })).body.error).toMatchObject({ code: 'invalid_request', field: 'note' });
    expect((await resolve(baseUrl, payment.id, { ...good, decision: 'maybe' })).body.error).toMatchObject({ code: 'invalid_request', field: 'decision' });
    expect((await resolve(baseUrl, payment.id, { ...good, resolutionId: 'one' })).body.error).toMatchObject({ code: 'invalid_request', field: 'resolutionId' });

    const reader = await resolve(baseUrl, payment.id, good, tokens.reader);
    expect(reader).toMatchObject({ status: 403, body: { error: { code: 'forbidden', field: 'Authorization', message: 'this operation needs the reviews:resolve scope' } } });
    expect((await resolve(baseUrl, payment.id, good, tokens.rulesOperator)).status).toBe(403);
    const listByRulesOperator = await fetch(`${baseUrl}/v1/reviews`, { headers: { authorization: `Bearer ${tokens.rulesOperator}` } });
    expect(listByRulesOperator.status).toBe(403);

    const wrongAttempt = await resolve(baseUrl, payment.id, { ...good, attemptId: 'no-such-attempt' });
    expect(wrongAttempt).toMatchObject({ status: 409, body: { error: { code: 'not_in_review', field: 'attemptId' } } });
    const wrongDecision = await resolve(baseUrl, payment.id, { ...good, decision: 'refunded' });
    expect(wrongDecision).toMatchObject({ status: 409, body: { error: { code: 'not_in_review', field: 'decision' } } });

    // Still in review after all of those: nothing was sent.
    expect((await getPayment(stack.baseUrl, payment.id)).review).toBeDefined();
    expect((await resolve(baseUrl, payment.id, good)).status).toBe(200);

    // Now it is not in review any more: a new resolution is refused with 409 naming the payment.
    const late = await resolve(baseUrl, payment.id, resolution(payment, 'paid'));
    expect(late).toMatchObject({ status: 409, body: { error: { code: 'not_in_review', field: 'paymentId' } } });
    expect(late.body.error?.message).toMatch(/is not in review/);
    const settledDeposit = await postPayment(stack.baseUrl, deposit({ currency: 'EUR' }), { 'Idempotency-Key': randomUUID(), Prefer: 'wait=10' });
    const notFlagged = await resolve(baseUrl, String(settledDeposit.body.id), { ...good, resolutionId: randomUUID() });
    expect(notFlagged).toMatchObject({ status: 409, body: { error: { code: 'not_in_review', field: 'paymentId' } } });
    expect((await resolve(baseUrl, 'no-such-payment', { ...good, resolutionId: randomUUID() })).status).toBe(404);

    // A resolution id reused for another decision is a conflict, not a second resolution.
    expect((await resolve(baseUrl, payment.id, { ...good, decision: 'paid' })).status).toBe(422);

    const metrics = await (await fetch(`${baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/backoffice_review_resolutions_total\{decision="not-paid",result="not_in_review",service="backoffice"\} 2/);
    expect(metrics).toMatch(/backoffice_review_resolutions_total\{decision="paid",result="not_in_review",service="backoffice"\} 1/);
    expect(metrics).toMatch(/backoffice_review_resolutions_total\{decision="refunded",result="not_in_review",service="backoffice"\} 1/);
    expect(metrics).toMatch(/http_requests_total\{method="POST",route="\/v1\/reviews\/:paymentId\/resolution",status="409",service="backoffice"\} 4/);
    expect(metrics).toMatch(/http_requests_total\{method="POST",route="\/v1\/reviews\/:paymentId\/resolution",status="400",service="backoffice"\} 4/);
    expect(metrics).toMatch(/http_requests_total\{method="POST",route="\/v1\/reviews\/:paymentId\/resolution",status="403",service="backoffice"\} 2/);
  });

  test('When a review.resolved command is not signed by the back office, then no orchestrator applies it: it is parked and counted', async () => {
    const payment = await withdrawalInReview();
    const forged: ReviewResolved = {
      eventId: randomUUID(),
      type: 'review.resolved',
      occurredAt: new Date().toISOString(),
      schemaVersion: 1,
      resolutionId: randomUUID(),
      paymentId: payment.id,
      attemptId: String(payment.review?.attemptId),
      decision: 'paid',
      actor: 'mallory',
      note: 'trust me',
    };
    await publishReviewCommand(payment.id, JSON.stringify(forged), false);
    await untilMetrics(stack.baseUrl, /orchestrator_control_events_refused_total\{topic="reviews",reason="bad-signature",service="orchestrator"\} 1/);
    const still = await getPayment(stack.baseUrl, payment.id);
    expect([still.status, still.review?.reason, still.resolutions]).toEqual(['PENDING', 'cancel-unconfirmed', undefined]);
  });

  async function publishReviewCommand(paymentId: string, value: string, signed: boolean): Promise<void> {
    const producer = stack.kafka.producer();
    await producer.connect();
    try {
      const headers = signed ? { [SIGNATURE_HEADER]: signMessage(DEVELOPMENT_RULES_KEY, paymentId, value) } : undefined;
      await producer.send({ topic: stack.topics.reviews, messages: [{ key: paymentId, value, ...(headers ? { headers } : {}) }] });
    } finally {
      await producer.disconnect();
    }
  }

  /** Waits until a counter summed over several instances reaches `total`. */
  async function untilMetricsSum(urls: string[], series: string, total: number): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      let sum = 0;
      for (const url of urls) {
        const text = await (await fetchApi(`${url}/metrics`)).text();
        const line = text.split('\n').find((candidate) => candidate.startsWith(series));
        sum += Number(line?.split(' ').at(-1) ?? 0);
      }
      if (sum >= total) return;
      if (Date.now() > deadline) throw new Error(`${series} summed to ${sum}, not ${total}`);
      await new Promise((resolveWait) => setTimeout(resolveWait, 50));
    }
  }
});
