import { z } from 'zod';
import { amountMinor, currency, envelope, gatewayInstant, ids, paymentType, region } from './envelope';

/** Orchestrator → gateway: process this attempt of a payment. */
export const attemptRequested = envelope('attempt.requested').extend({
  paymentId: ids.paymentId,
  attemptId: ids.attemptId,
  gatewayId: ids.gatewayId,
  paymentType,
  accountId: z.string().min(1).max(64),
  amount: amountMinor,
  currency,
  region,
  deadline: z.string().datetime({ offset: true }),
});
export type AttemptRequested = z.infer<typeof attemptRequested>;

/**
 * Orchestrator → gateway: stop or undo an attempt. `cancel` asks the gateway
 * to abandon an attempt it may still be working on; `compensate` asks it to
 * void or refund an attempt that succeeded after the payment had already
 * settled elsewhere.
 */
export const attemptCommand = envelope('attempt.command').extend({
  command: z.enum(['cancel', 'compensate']),
  paymentId: ids.paymentId,
  attemptId: ids.attemptId,
  gatewayId: ids.gatewayId,
  reason: z.string().max(200),
});
export type AttemptCommand = z.infer<typeof attemptCommand>;

export const gatewayRequestMessage = z.discriminatedUnion('type', [attemptRequested, attemptCommand]);
export type GatewayRequestMessage = z.infer<typeof gatewayRequestMessage>;

/** Gateway → orchestrator: the outcome of one attempt. */
export const gatewayResult = envelope('gateway.result').extend({
  occurredAt: gatewayInstant,
  paymentId: ids.paymentId,
  attemptId: ids.attemptId,
  gatewayId: ids.gatewayId,
  outcome: z.enum(['success', 'failure']),
  /** Why it failed; the orchestrator's reason table decides if it is retryable. */
  reasonCode: z.string().min(1).max(64).optional(),
  gatewayReference: z.string().max(128).optional(),
  /**
   * When the attempt's request reached Kafka (its message timestamp, as the gateway worker read it): where the
   * gateway's own time starts, so a request that waited in the orchestrator's outbox is not charged to the
   * gateway's latency. Optional: without it, latency runs from the orchestrator's dispatch decision.
   */
  requestedAt: gatewayInstant.optional(),
});
export type GatewayResult = z.infer<typeof gatewayResult>;

/**
 * Gateway → orchestrator: what became of a cancel or compensate command.
 * - cancelled: the attempt was stopped before it moved money
 * - not-found: the gateway never saw the attempt (so it cannot move money)
 * - already-succeeded: too late to cancel, the money moved (treat as a success)
 * - compensated: the void/refund of a late success is done
 */
export const commandResult = envelope('attempt.command-result').extend({
  occurredAt: gatewayInstant,
  command: z.enum(['cancel', 'compensate']),
  paymentId: ids.paymentId,
  attemptId: ids.attemptId,
  gatewayId: ids.gatewayId,
  result: z.enum(['cancelled', 'not-found', 'already-succeeded', 'compensated']),
});
export type CommandResult = z.infer<typeof commandResult>;

/** Everything on the results topic. */
export const resultMessage = z.discriminatedUnion('type', [gatewayResult, commandResult]);
export type ResultMessage = z.infer<typeof resultMessage>;

/**
 * What identifies the attempt a results-topic message is about, read from a
 * message that fails `resultMessage`: such a message is an unknown outcome
 * of that attempt, never noise.
 */
export const resultIdentity = z.object({ paymentId: ids.paymentId, attemptId: ids.attemptId, gatewayId: z.string().max(100).optional() });

export const paymentStatus = z.enum(['PENDING', 'SUCCESS', 'FAILURE']);
export type PaymentStatus = z.infer<typeof paymentStatus>;

/** Orchestrator → platform and audit: a payment changed state. */
export const paymentStatusChanged = envelope('payment.status').extend({
  paymentId: ids.paymentId,
  status: paymentStatus,
  /** Increases by one with every change of this payment, so consumers can order and de-duplicate. */
  sequence: z.number().int().positive(),
  paymentType,
  accountId: z.string().min(1).max(64),
  amount: amountMinor,
  currency,
  region,
  attemptId: ids.attemptId.optional(),
  gatewayId: ids.gatewayId.optional(),
  reason: z.string().max(200).optional(),
});
export type PaymentStatusChanged = z.infer<typeof paymentStatusChanged>;

/** Why this gateway, as the attempt keeps it: the chosen one is the attempt's gateway, so it is not repeated. */
const routingExplanation = z.object({
  /** The gateways it was chosen among, with the (health-scaled) weights used. */
  candidates: z.array(z.object({ gatewayId: ids.gatewayId, weight: z.number().nonnegative() })).max(1000),
  excluded: z.array(z.object({ gatewayId: ids.gatewayId, reason: z.string().min(1).max(40) })).max(1000),
  /** `rules@<offset>` of the last rule event applied when the choice was made. */
  rulesVersion: z.string().min(1).max(100),
});

const reviewReason = z.enum(['cancel-unconfirmed', 'compensation-unconfirmed']);
const onAttempt = <K extends string>(kind: K) => z.object({ kind: z.literal(kind), attemptId: ids.attemptId, gatewayId: ids.gatewayId });

/** One change of one attempt (docs/topics.md#paymentattempts). */
export const attemptEvent = z.discriminatedUnion('kind', [
  onAttempt('dispatched').extend({
    number: z.number().int().positive(),
    /** When the attempt times out unless the gateway answers. */
    deadline: z.string().datetime({ offset: true }),
    routing: routingExplanation,
  }),
  /** The gateway's answer; `late` when it came after the attempt timed out, failed or was cancelled, or after the payment settled. */
  onAttempt('answered').extend({
    outcome: z.enum(['success', 'failure']),
    /** The gateway's reason for a failure. */
    reasonCode: z.string().min(1).max(64).optional(),
    late: z.literal(true).optional(),
    /** When the answer reached Kafka. */
    at: z.string().datetime({ offset: true }),
  }),
  /** A message named the attempt but its outcome could not be read; where it was parked. */
  onAttempt('result-unreadable').extend({ deadLetter: z.string().max(300) }),
  /** No answer by the deadline. */
  onAttempt('timed-out'),
  onAttempt('cancel-asked').extend({ why: z.enum(['timeout', 'unreadable-result', 'settled-elsewhere']) }),
  onAttempt('cancel-confirmed'),
  /** A void/refund of a late success; `try` counts the (identical) commands sent, so > 1 is a re-send after no confirmation. */
  onAttempt('compensation-asked').extend({ try: z.number().int().positive(), deadline: z.string().datetime({ offset: true }) }),
  onAttempt('compensation-confirmed'),
  onAttempt('review-flagged').extend({ reason: reviewReason }),
  /**
   * The review of this attempt ended: `gateway-answered` when the gateway's own answer (a success, failure or
   * confirmation) ended it, or an operator's decision with who and why.
   */
  onAttempt('review-resolved').extend({
    reason: reviewReason,
    resolution: z.enum(['gateway-answered', 'paid', 'not-paid', 'refunded']),
    actor: z.string().min(1).max(100).optional(),
    note: z.string().min(1).max(500).optional(),
  }),
]);
export type AttemptEvent = z.infer<typeof attemptEvent>;

/**
 * Orchestrator → platform and audit: the attempt-level changes of one stored change of a payment, in the order
 * they happened. Written through the outbox with the change, so none is lost and they are in order per payment.
 */
export const paymentAttemptsChanged = envelope('payment.attempts').extend({
  paymentId: ids.paymentId,
  /** The payment's revision this change wrote: 1 when accepted, then +1 per change, so a gap is a missing message. */
  sequence: z.number().int().positive(),
  events: z.array(attemptEvent).max(100),
});
export type PaymentAttemptsChanged = z.infer<typeof paymentAttemptsChanged>;

/** Inclusive bounds of a payment amount in one currency, in its minor units. */
export const amountBound = z.object({ min: amountMinor.optional(), max: amountMinor.optional() });
export type AmountBound = z.infer<typeof amountBound>;

/** Back office → orchestrators: the routing rules of one gateway (compacted by gateway id). */
export const gatewayRule = z.object({
  gatewayId: ids.gatewayId,
  enabled: z.boolean(),
  regions: z.array(z.union([region, z.literal('*')])).min(1),
  paymentTypes: z.array(paymentType).min(1),
  currencies: z.array(currency).min(1),
  /**
   * Inclusive amount bounds per currency, in that currency's minor units
   * (`{"EUR": {"min": "100", "max": "100000000"}, "JPY": {...}}`): one number
   * means very different sums in different currencies. The back office
   * refuses a rule that serves a currency without a bound for it; a rule
   * that reached the topic another way serves no payment in such a
   * currency (selection excludes it as `no-amount-bound`).
   */
  amountBounds: z.record(currency, amountBound).optional(),
  weight: z.number().int().min(0).max(1000),
  timeoutMs: z.number().int().min(100).max(600_000),
  /**
   * What a timeout means, per payment type: `failover` tries the next gateway
   * at once; `cancel-first` asks this gateway to cancel and fails over only
   * when it confirms (money leaving us must not leave twice).
   */
  timeoutPolicy: z
    .object({
      deposit: z.enum(['failover', 'cancel-first']).default('failover'),
      withdrawal: z.enum(['failover', 'cancel-first']).default('cancel-first'),
    })
    .default({ deposit: 'failover', withdrawal: 'cancel-first' }),
  /**
   * At most this many attempts in any rolling second, shared by all orchestrator instances (a sliding-window
   * log in Redis); a gateway over it is skipped, not failed.
   */
  rateLimitPerSecond: z.number().int().positive().max(1_000_000).optional(),
  available: z.boolean(),
  unavailableReason: z.string().max(200).optional(),
});
export type GatewayRule = z.infer<typeof gatewayRule>;

export const ruleChanged = envelope('rule.changed').extend({
  rule: gatewayRule,
  version: z.number().int().positive(),
  changedBy: z.string().min(1).max(100),
});
export type RuleChanged = z.infer<typeof ruleChanged>;

/**
 * Back office → orchestrators: a gateway's rule is removed, at a version above its last one. A removal is a
 * signed, versioned event like any change, never a bare null (a tombstone on the rule topic changes nothing).
 */
export const ruleRemoved = envelope('rule.removed').extend({
  gatewayId: ids.gatewayId,
  version: z.number().int().positive(),
  changedBy: z.string().min(1).max(100),
});
export type RuleRemoved = z.infer<typeof ruleRemoved>;

/** Every message on the rule topic (compacted by gateway id); each carries its gateway's version, which only grows. */
export const ruleEvent = z.discriminatedUnion('type', [ruleChanged, ruleRemoved]);
export type RuleEvent = z.infer<typeof ruleEvent>;

/** The gateway a rule event is about: a message whose key names another one was moved, and is refused. */
export const ruleEventGateway = (event: RuleEvent): string => (event.type === 'rule.changed' ? event.rule.gatewayId : event.gatewayId);

/** Orchestrators → everyone: a gateway's breaker changed state (compacted by gateway id). */
export const gatewayHealthChanged = envelope('gateway.health').extend({
  gatewayId: ids.gatewayId,
  breaker: z.enum(['closed', 'open', 'half-open']),
  reportedBy: z.string().min(1).max(100),
  /** After this instant (ISO 8601) the state is history: it changes no breaker, so a new instance does not start from it. */
  expiresAt: z.string().datetime({ offset: true }),
});
export type GatewayHealthChanged = z.infer<typeof gatewayHealthChanged>;

/** Attempt outcomes of one gateway, counted by one orchestrator instance over its recent window. */
const gatewayOutcomeCounts = z.object({
  gatewayId: ids.gatewayId,
  successes: z.number().int().nonnegative(),
  /** Final (business) declines: the gateway worked, the payment was refused. */
  declines: z.number().int().nonnegative(),
  /** Retryable (technical) failures. */
  failures: z.number().int().nonnegative(),
  timeouts: z.number().int().nonnegative(),
});
export type GatewayOutcomeCounts = z.infer<typeof gatewayOutcomeCounts>;

/** Adds up counts per gateway (several time slices, or several instances' reports), sorted by gateway id. */
export function sumOutcomeCounts(counts: Iterable<GatewayOutcomeCounts>): GatewayOutcomeCounts[] {
  const totals = new Map<string, GatewayOutcomeCounts>();
  for (const { gatewayId, successes, declines, failures, timeouts } of counts) {
    const total = totals.get(gatewayId) ?? { gatewayId, successes: 0, declines: 0, failures: 0, timeouts: 0 };
    totals.set(gatewayId, total);
    total.successes += successes;
    total.declines += declines;
    total.failures += failures;
    total.timeouts += timeouts;
  }
  return [...totals.values()].sort((a, b) => a.gatewayId.localeCompare(b.gatewayId));
}

/**
 * Orchestrator → back office: one instance's recent attempt outcomes per
 * gateway, replaced every few seconds (compacted by instance id), so the
 * operator page can show a recent success rate summed over every instance.
 */
export const gatewayStatsReported = envelope('gateway.stats').extend({
  reportedBy: z.string().min(1).max(100),
  windowSeconds: z.number().int().positive(),
  gateways: z.array(gatewayOutcomeCounts).max(1000),
});
export type GatewayStatsReported = z.infer<typeof gatewayStatsReported>;

/** Anything a consumer could not accept, parked with the reason and where it came from. */
export const deadLetter = envelope('dead.letter').extend({
  sourceTopic: z.string(),
  partition: z.number().int(),
  offset: z.string(),
  key: z.string().nullable(),
  reason: z.string().max(100),
  detail: z.string().max(2000),
  /** The original value as base64, cut at a bound so a huge poison message cannot be re-parked whole. */
  valueBase64: z.string(),
  valueBytes: z.number().int().nonnegative(),
  consumer: z.string(),
});
export type DeadLetter = z.infer<typeof deadLetter>;

/** `republished`: the back office published the audited rule (or removal) again, at a new version, after the topic diverged from the audit trail. */
export const ruleAuditAction = z.enum(['created', 'updated', 'deleted', 'marked-unavailable', 'marked-available', 'republished']);
export type RuleAuditAction = z.infer<typeof ruleAuditAction>;

/**
 * Back office → audit: who changed which gateway's rule, when (`occurredAt`),
 * what changed, the rule before and after (null when it did not exist or was
 * removed) and the version the change produced. Recorded in the back office's
 * outbox with the rule event, so neither leaves without the other (ADR 0018).
 */
export const ruleAudited = envelope('rule.audited').extend({
  gatewayId: ids.gatewayId,
  action: ruleAuditAction,
  /** The subject of the bearer token that made the change. */
  actor: z.string().min(1).max(100),
  /** The top-level rule fields whose value differs between before and after. */
  changedFields: z.array(z.string().max(40)).max(40),
  before: gatewayRule.nullable(),
  after: gatewayRule.nullable(),
  /** The version after the change (for a removal: the version the removal used up). */
  version: z.number().int().positive(),
  /** Given when marking unavailable, and for a re-publication (why). */
  reason: z.string().max(200).optional(),
});
export type RuleAudited = z.infer<typeof ruleAudited>;

/**
 * What an operator decided about a payment in review, after checking with the gateway:
 * - paid: the gateway moved the money on that attempt (a success of that attempt)
 * - not-paid: it did not and will not (as a confirmed cancel: fail over, or FAILURE when no gateway is left)
 * - refunded: the void/refund of a late success was made (as a confirmed compensation)
 */
export const reviewDecision = z.enum(['paid', 'not-paid', 'refunded']);
export type ReviewDecision = z.infer<typeof reviewDecision>;

/**
 * Back office → orchestrators: apply an operator's decision on a payment in review (keyed by payment id,
 * signed like rule events). `resolutionId` makes it idempotent: applied once, whoever receives it how often.
 */
export const reviewResolved = envelope('review.resolved').extend({
  resolutionId: z.string().uuid(),
  paymentId: ids.paymentId,
  attemptId: ids.attemptId,
  decision: reviewDecision,
  /** The subject of the bearer token that decided. */
  actor: z.string().min(1).max(100),
  note: z.string().min(1).max(500),
});
export type ReviewResolved = z.infer<typeof reviewResolved>;

/**
 * Back office → audit: who resolved which review, when (`occurredAt`) and why (`note`), keyed by payment id.
 * Recorded in the back office's outbox with the `review.resolved` command it describes, so neither leaves alone.
 */
export const reviewAudited = envelope('review.audited').extend({
  resolutionId: z.string().uuid(),
  paymentId: ids.paymentId,
  attemptId: ids.attemptId,
  gatewayId: ids.gatewayId,
  /** Why the payment was in review when the operator decided. */
  reviewReason: z.enum(['cancel-unconfirmed', 'compensation-unconfirmed']),
  decision: reviewDecision,
  actor: z.string().min(1).max(100),
  note: z.string().min(1).max(500),
});
export type ReviewAudited = z.infer<typeof reviewAudited>;

/** Everything on the audit topic: rule changes (keyed by gateway id) and review resolutions (keyed by payment id). */
export const auditEntry = z.discriminatedUnion('type', [ruleAudited, reviewAudited]);
export type AuditEntry = z.infer<typeof auditEntry>;
