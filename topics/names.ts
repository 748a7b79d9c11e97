import type { ITopicConfig } from 'kafkajs';

/** One topic's name and settings, as `ensureTopics` creates it. */
export type TopicSpec = ITopicConfig & { topic: string };

const DAY_MS = 24 * 60 * 60 * 1000;
const retention = (days: number) => [{ name: 'retention.ms', value: String(days * DAY_MS) }];
const compacted = [
  { name: 'cleanup.policy', value: 'compact' },
  { name: 'min.compaction.lag.ms', value: '0' },
];

/** Partitions of the payment-keyed topics: the unit of parallelism across orchestrator instances. */
export const PAYMENT_PARTITIONS = 6;

/**
 * Every topic name, under an optional prefix so several stacks or test files
 * can share one broker without seeing each other's messages.
 */
export function topicNames(prefix = '') {
  return {
    /** Attempt requests and cancel/compensate commands for one gateway, keyed by payment id. */
    gatewayRequests: (gatewayId: string) => `${prefix}gateway.${gatewayId}.requests`,
    /** Results from every gateway, keyed by payment id. */
    gatewayResults: `${prefix}gateway.results`,
    /** Every payment state change, keyed by payment id (so in order per payment). */
    paymentStatus: `${prefix}payment.status`,
    /** Every attempt-level change (dispatched, answered, timed out, cancel, compensation, review), keyed by payment id. */
    paymentAttempts: `${prefix}payment.attempts`,
    /** Gateway routing rules, compacted by gateway id; the source of truth for routing. */
    rules: `${prefix}backoffice.rules`,
    /** Breaker state per gateway, compacted by gateway id. */
    gatewayHealth: `${prefix}gateway.health`,
    /** Each orchestrator instance's recent attempt outcomes per gateway, compacted by instance id. */
    gatewayStats: `${prefix}gateway.stats`,
    /** Messages a consumer could not accept. */
    deadLetter: `${prefix}deadletter`,
    /** Every rule change with who, before and after, keyed by gateway id; not compacted, so the trail stays. */
    audit: `${prefix}backoffice.audit`,
    /** Operators' signed decisions on payments in review, keyed by payment id (docs/decisions/0018). */
    reviews: `${prefix}backoffice.reviews`,
  };
}
export type TopicNames = ReturnType<typeof topicNames>;

/** How the topics are laid out on the brokers; every field is optional (the development defaults). */
export interface TopicLayout {
  /** Partitions of the payment-keyed topics; PAYMENT_PARTITIONS (6) by default. */
  paymentPartitions?: number;
  /** Copies of every partition; the broker's default.replication.factor when absent. */
  replicationFactor?: number;
  /** Copies that must have a message before acks=all acknowledges it; the broker's default when absent. */
  minInsyncReplicas?: number;
}

/** The specs of every topic a stack with these gateways needs. */
export function topicSpecs(prefix: string, gatewayIds: readonly string[], layout: TopicLayout = {}): TopicSpec[] {
  const names = topicNames(prefix);
  const partitions = layout.paymentPartitions ?? PAYMENT_PARTITIONS;
  // Durability is per topic: a cluster whose brokers default to one copy still gets what the stack asked for.
  const replication = layout.replicationFactor === undefined ? {} : { replicationFactor: layout.replicationFactor };
  const inSync = layout.minInsyncReplicas === undefined ? [] : [{ name: 'min.insync.replicas', value: String(layout.minInsyncReplicas) }];
  const spec = (topic: string, numPartitions: number, configEntries: Array<{ name: string; value: string }>): TopicSpec => ({
    topic,
    numPartitions,
    ...replication,
    configEntries: [...configEntries, ...inSync],
  });
  return [
    ...gatewayIds.map((id) => spec(names.gatewayRequests(id), partitions, retention(7))),
    // The broker stamps each result when it is appended: the time a timeout is judged by (docs/decisions/0015).
    spec(names.gatewayResults, partitions, [...retention(7), { name: 'message.timestamp.type', value: 'LogAppendTime' }]),
    spec(names.paymentStatus, partitions, retention(30)),
    spec(names.paymentAttempts, partitions, retention(30)),
    spec(names.rules, 1, compacted),
    spec(names.gatewayHealth, 1, compacted),
    spec(names.gatewayStats, 1, compacted),
    spec(names.deadLetter, 1, retention(30)),
    // One partition keeps the whole trail in order; rule changes are rare.
    spec(names.audit, 1, retention(365)),
    // Keyed by payment id like the results: whichever orchestrator reads it may apply a resolution (compare-and-set, ADR 0018).
    spec(names.reviews, partitions, retention(30)),
  ];
}
