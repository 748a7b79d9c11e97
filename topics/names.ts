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
  };
}
export type TopicNames = ReturnType<typeof topicNames>;

/** The specs of every topic a stack with these gateways needs. */
export function topicSpecs(prefix: string, gatewayIds: readonly string[]): TopicSpec[] {
  const names = topicNames(prefix);
  return [
    ...gatewayIds.map((id) => ({
      topic: names.gatewayRequests(id),
      numPartitions: PAYMENT_PARTITIONS,
      configEntries: retention(7),
    })),
    // The broker stamps each result when it is appended: the time a timeout is judged by (docs/decisions/0014).
    { topic: names.gatewayResults, numPartitions: PAYMENT_PARTITIONS, configEntries: [...retention(7), { name: 'message.timestamp.type', value: 'LogAppendTime' }] },
    { topic: names.paymentStatus, numPartitions: PAYMENT_PARTITIONS, configEntries: retention(30) },
    { topic: names.rules, numPartitions: 1, configEntries: compacted },
    { topic: names.gatewayHealth, numPartitions: 1, configEntries: compacted },
    { topic: names.gatewayStats, numPartitions: 1, configEntries: compacted },
    { topic: names.deadLetter, numPartitions: 1, configEntries: retention(30) },
    // One partition keeps the whole trail in order; rule changes are rare.
    { topic: names.audit, numPartitions: 1, configEntries: retention(365) },
  ];
}
