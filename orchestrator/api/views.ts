import { z } from 'zod';
import type { ErrorBody } from '../../runtime/http';
import { amountMinor, currency, ids, paymentType, region } from '../../topics/envelope';
import { gatewayRule, paymentStatus, reviewDecision, type GatewayRule } from '../../topics/schemas';
import type { BreakerState, ChangeReason, HealthExplanation } from '../health/gateway-health';
import type { ExclusionReason, RoutingDecision } from '../routing/select';
import type { Attempt, AttemptStatus, Payment } from '../state/payment';

/**
 * The response bodies of the orchestrator's HTTP API as zod schemas, the
 * source of the OpenAPI document (orchestrator/api/openapi.ts). They describe
 * what the handlers send; they are not used to parse anything. The type-level
 * checks at the end of this file fail `tsc` when a schema and the TypeScript
 * type it documents drift apart. `.meta({ id })` names the component in the
 * document.
 */

const timestamp = z.iso.datetime({ offset: true }).meta({ description: 'ISO 8601 date-time (UTC, e.g. 2026-11-21T23:45:35.799Z)' });

export const errorBody = z
  .object({
    error: z.object({
      code: z.string().meta({ description: 'Stable, machine-readable code, e.g. invalid_request, not_found, idempotency_conflict' }),
      message: z.string().meta({ description: 'For people; may change' }),
      field: z.string().optional().meta({ description: 'The part of the request at fault: a header, a body field, a query or path parameter, or `body`' }),
    }),
  })
  .meta({
    id: 'Error',
    description: 'The one error shape of every route',
    example: { error: { code: 'invalid_request', message: 'amount: a positive whole number of minor units', field: 'amount' } },
  });

const exclusionReasons = [
  'region',
  'payment-type',
  'currency',
  'no-amount-bound',
  'below-min-amount',
  'above-max-amount',
  'disabled',
  'unavailable',
  'zero-weight',
  'already-tried',
  'circuit-open',
  'rate-limited',
] as const satisfies readonly ExclusionReason[];

export const routingDecision = z
  .object({
    chosen: ids.gatewayId.nullable().meta({ description: 'The gateway picked by weight among the candidates; null when none was left' }),
    candidates: z.array(z.object({ gatewayId: ids.gatewayId, weight: z.number().meta({ description: 'Effective (health-aware) weight at decision time' }) })),
    excluded: z.array(z.object({ gatewayId: ids.gatewayId, reason: z.enum(exclusionReasons) })),
    rulesVersion: z.string().meta({ description: 'Version of the rules in force, e.g. rules@42' }),
  })
  .meta({ id: 'RoutingDecision', description: 'Why this gateway: the candidates with their weights and every excluded gateway with its reason' });

const attemptStatuses = [
  'in-flight',
  'cancelling',
  'succeeded',
  'failed',
  'timed-out',
  'cancelled',
  'compensating',
  'compensated',
] as const satisfies readonly AttemptStatus[];

export const attemptView = z
  .object({
    id: ids.attemptId,
    number: z.number().int().positive().meta({ description: '1 for the first attempt, then one more per failover' }),
    gatewayId: ids.gatewayId,
    status: z.enum(attemptStatuses).meta({
      description:
        'in-flight: awaiting the outcome; cancelling: timed out, cancel requested (cancel-first policy); succeeded; failed; timed-out; ' +
        'cancelled; compensating: succeeded after the payment settled elsewhere, void/refund requested; compensated: void/refund confirmed',
    }),
    dispatchedAt: timestamp,
    deadline: timestamp.meta({
      description: 'When the current wait ends: the outcome while in flight, the cancel confirmation while cancelling, the void/refund confirmation while compensating',
    }),
    completedAt: timestamp.optional(),
    reasonCode: z.string().optional().meta({ description: "The gateway's failure reason, `timeout`, or `unreadable-result` (cancel asked after an answer that could not be read)" }),
    cancelUnconfirmedAt: timestamp.optional().meta({ description: 'Set when a cancel was never confirmed; the payment is then flagged for review' }),
    compensationsSent: z.int().min(1).optional().meta({ description: 'While compensating: compensate commands sent so far, all with the same command id' }),
    compensationUnconfirmedAt: timestamp
      .optional()
      .meta({ description: 'Set when the last compensate command went unconfirmed too; the payment is then flagged for review' }),
    unreadableResult: z
      .object({
        deadLetter: z.string().meta({ description: 'Where the message was parked on the dead-letter topic: "{topic}:{partition}:{offset}", also its key there' }),
        detail: z.string().meta({ description: 'Why its outcome could not be read' }),
        at: timestamp.meta({ description: 'When the message reached Kafka' }),
      })
      .optional()
      .meta({ description: 'A message named this attempt but its outcome could not be read; the gateway was asked to cancel instead of the payment failing over' }),
    routing: routingDecision,
  })
  .meta({ id: 'Attempt', description: 'One try of the payment at one gateway' });

export const paymentView = z
  .object({
    id: ids.paymentId,
    type: paymentType,
    accountId: z.string().min(1).max(64),
    amount: amountMinor.meta({ description: 'Integer minor units as a string of digits ("10000" is 100.00 in a two-decimal currency)' }),
    currency,
    region,
    status: paymentStatus.meta({ description: 'PENDING, then exactly one of SUCCESS or FAILURE, which never changes' }),
    reason: z.string().optional().meta({ description: 'Why the payment failed (the final decline code, no-gateway-left, max-attempts-exhausted)' }),
    createdAt: timestamp,
    updatedAt: timestamp,
    review: z
      .object({
        reason: z.enum(['cancel-unconfirmed', 'compensation-unconfirmed']).meta({
          description:
            'cancel-unconfirmed: a timed-out withdrawal gateway never confirmed the cancel (the payment stays PENDING); ' +
            'compensation-unconfirmed: a gateway never confirmed the void/refund of a late success (the payment keeps its terminal status)',
        }),
        attemptId: ids.attemptId,
        since: timestamp,
      })
      .optional()
      .meta({ description: 'Present while a person must look at the payment; it is listed under /v1/reviews' }),
    resolutions: z
      .array(
        z.object({
          id: z.string().meta({ description: 'The resolution id the back office chose; the same id again changes nothing' }),
          attemptId: ids.attemptId,
          reason: z.enum(['cancel-unconfirmed', 'compensation-unconfirmed']).meta({ description: 'Why the payment was in review' }),
          decision: reviewDecision.meta({
            description: 'paid: the attempt succeeded; not-paid: it was cancelled (fail over or FAILURE); refunded: the void/refund was made',
          }),
          actor: z.string().meta({ description: 'The subject of the operator token that decided' }),
          note: z.string().meta({ description: 'Why, in the operator\'s words' }),
          at: timestamp,
        }),
      )
      .optional()
      .meta({ description: 'Reviews a person resolved in the back office, oldest first (docs/decisions/0018)' }),
    attempts: z.array(attemptView).meta({ description: 'Every attempt, oldest first, each with its routing explanation' }),
  })
  .meta({
    id: 'Payment',
    example: {
      id: '4f621f2f-5d18-465c-bed0-15d5949616da',
      type: 'withdrawal',
      accountId: 'acc-42',
      amount: '2500',
      currency: 'USD',
      region: 'US',
      status: 'PENDING',
      createdAt: '2026-11-21T23:45:35.799Z',
      updatedAt: '2026-11-21T23:45:35.799Z',
      attempts: [
        {
          id: 'c1a201bb-88e8-4c85-8b16-cb958badac45',
          number: 1,
          gatewayId: 'gamma',
          status: 'in-flight',
          dispatchedAt: '2026-11-21T23:45:35.799Z',
          deadline: '2026-11-21T23:45:40.799Z',
          routing: {
            chosen: 'gamma',
            candidates: [
              { gatewayId: 'beta', weight: 1 },
              { gatewayId: 'gamma', weight: 2 },
            ],
            excluded: [{ gatewayId: 'alpha', reason: 'region' }],
            rulesVersion: 'rules@2',
          },
        },
      ],
    },
  });

export const paymentPage = z
  .object({
    payments: z.array(paymentView).meta({ description: 'Newest first' }),
    nextCursor: z.string().optional().meta({ description: 'Opaque; pass as `cursor` for the next page. Absent on the last page' }),
  })
  .meta({ id: 'PaymentPage', description: "One page of an account's payments" });

export const reviewList = z
  .object({ payments: z.array(paymentView) })
  .meta({ id: 'ReviewList', description: 'Withdrawals flagged for review: a timed-out gateway never confirmed the cancel, so a person decides' });

const breakerStates = ['closed', 'open', 'half-open'] as const satisfies readonly BreakerState[];

const changeReasons = [
  'initial',
  'consecutive-failures',
  'failure-rate',
  'trial-failed',
  'trial-succeeded',
  'ejection-over',
  'remote',
] as const satisfies readonly ChangeReason[];

const healthChange = z
  .object({
    state: z.enum(breakerStates),
    reason: z.enum(changeReasons).meta({ description: 'Why the state changed (see docs/architecture.md, Gateway health)' }),
    at: z.string().meta({ description: 'When it changed (ISO 8601)' }),
    ejectedUntil: z.string().optional().meta({ description: 'For open: when a half-open trial becomes possible (ISO 8601)' }),
    ejections: z.number().int().meta({ description: 'Ejections in a row, this one included; each lasts longer, up to a cap' }),
    detail: z.string().meta({ description: 'The change in one sentence' }),
  })
  .meta({ id: 'HealthChange' });

const healthExplanation = z
  .object({
    state: z.enum(breakerStates),
    lastChange: healthChange,
    consecutiveFailures: z.number().int().meta({ description: 'Technical failures in a row while closed; the gateway is ejected at the configured count' }),
    ejectionSuppressed: z
      .object({ at: z.string(), region: z.string(), detail: z.string() })
      .optional()
      .meta({ description: "Set while an ejection is refused because the region's ejection cap is reached" }),
    window: z
      .object({
        outcomes: z.number().int().meta({ description: 'Outcomes held in the count window (the last N)' }),
        successRate: z.number().meta({ description: 'Technical success share of those outcomes, 0–1' }),
        meanLatencyMs: z.number().nullable().meta({ description: "Mean gateway latency of those answers (dispatch to the answer's broker time), in ms" }),
      })
      .meta({ description: 'The last N outcomes the health factor is computed from' }),
    factor: z.number().meta({ description: 'Multiplier on the rule weight from the window (floor–1)' }),
  })
  .meta({ id: 'GatewayHealth', description: "This instance's health model of the gateway: state, why, the failure streak and the weighting window" });

/** A gateway's rule as in force (defaults applied), with its live health. */
export const routingGateway = gatewayRule
  .extend({
    // The rule as stored has its defaults applied: the policy is always there.
    timeoutPolicy: z.object({
      deposit: z.enum(['failover', 'cancel-first']),
      withdrawal: z.enum(['failover', 'cancel-first']),
    }),
    breaker: z.enum(breakerStates).meta({ description: "This instance's circuit breaker state for the gateway" }),
    effectiveWeight: z.number().meta({ description: 'The rule weight after health-aware down-weighting' }),
    health: healthExplanation,
  })
  .meta({ id: 'RoutingGateway' });

export const routingView = z
  .object({
    instance: z.string().meta({ description: 'The orchestrator instance that answered' }),
    rulesVersion: z.string(),
    gateways: z.array(routingGateway),
  })
  .meta({ id: 'RoutingView', description: "This instance's routing: rules in force, breaker states and effective weights" });

// ---- The TypeScript types these schemas document --------------------------------------------------------------

/** The payment as the platform sees it: everything but the internal status sequence. */
export type PaymentView = Omit<Payment, 'statusSequence'>;
export interface PaymentPage {
  payments: PaymentView[];
  nextCursor?: string;
}
export interface ReviewList {
  payments: PaymentView[];
}
export interface RoutingGateway extends GatewayRule {
  breaker: BreakerState;
  effectiveWeight: number;
  health: HealthExplanation;
}
export interface RoutingView {
  instance: string;
  rulesVersion: string;
  gateways: RoutingGateway[];
}

/** True only when A and B are the same type (optional and readonly modifiers included). */
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Assert<T extends true> = T;

// Compile-time checks: `tsc` fails here when a schema and its type drift apart (a field added, removed,
// made optional or retyped on either side). They exist only as types; nothing runs.
export type ViewChecks = [
  Assert<Equals<z.infer<typeof errorBody>, ErrorBody>>,
  Assert<Equals<z.infer<typeof routingDecision>, RoutingDecision>>,
  Assert<Equals<z.infer<typeof attemptView>, Attempt>>,
  Assert<Equals<z.infer<typeof paymentView>, PaymentView>>,
  Assert<Equals<z.infer<typeof paymentPage>, PaymentPage>>,
  Assert<Equals<z.infer<typeof reviewList>, ReviewList>>,
  Assert<Equals<z.infer<typeof routingView>, RoutingView>>,
  // Every enum lists every member of its union (the `satisfies` above checks the other way).
  Assert<Equals<(typeof exclusionReasons)[number], ExclusionReason>>,
  Assert<Equals<(typeof attemptStatuses)[number], AttemptStatus>>,
  Assert<Equals<(typeof breakerStates)[number], BreakerState>>,
];
