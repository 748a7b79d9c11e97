import { Partitioners, type PartitionMetadata } from 'kafkajs';

/**
 * The results partition a gateway's answer for a payment lands on. The
 * contract (docs/topics.md) has gateways key results by payment id with
 * Kafka's default partitioner (murmur2, as runtime/kafka.ts's publisher and
 * the Java client do), so the orchestrator knows, before the answer exists,
 * which partition it must have read to call the gateway silent. kafkajs' own
 * partitioner is used rather than a copy of murmur2.
 *
 * `partitionCount` is the results topic's partition count; it must not change
 * while payments are in flight (keyed ordering breaks too).
 */
export function resultsPartitioner(partitionCount: number): (paymentId: string) => number {
  const partition = Partitioners.DefaultPartitioner();
  const partitionMetadata: PartitionMetadata[] = Array.from({ length: partitionCount }, (_, partitionId) => ({
    partitionErrorCode: 0,
    partitionId,
    leader: 0,
    replicas: [0],
    isr: [0],
  }));
  // A payment's partition is asked for on every store call of its life (create, each update, each outbox
  // clear), and murmur2 over the id is a visible cost per payment: the latest payments' answers are kept.
  const remembered = new Map<string, number>();
  return (paymentId) => {
    const known = remembered.get(paymentId);
    if (known !== undefined) return known;
    const computed = partition({ topic: 'results', partitionMetadata, message: { key: paymentId, value: null } });
    if (remembered.size >= PARTITIONS_REMEMBERED) remembered.clear();
    remembered.set(paymentId, computed);
    return computed;
  };
}

/** Payments whose results partition is remembered; past it the memory starts again (payments in flight recompute once). */
const PARTITIONS_REMEMBERED = 20_000;
