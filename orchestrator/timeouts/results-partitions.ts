import type { PartitionMetadata } from 'kafkajs';
import { rememberingPartitioner } from '../../runtime/kafka';

/**
 * The results partition a gateway's answer for a payment lands on. The
 * contract (docs/topics.md) has gateways key results by payment id with
 * Kafka's default partitioner (murmur2, as runtime/kafka.ts's publisher and
 * the Java client do), so the orchestrator knows, before the answer exists,
 * which partition it must have read to call the gateway silent. The
 * publisher's own partitioner is used (kafkajs' murmur2, each payment's answer
 * remembered: it is asked for on every store call of the payment's life)
 * rather than a copy of murmur2.
 *
 * `partitionCount` is the results topic's partition count; it must not change
 * while payments are in flight (keyed ordering breaks too).
 */
export function resultsPartitioner(partitionCount: number): (paymentId: string) => number {
  const partition = rememberingPartitioner();
  const partitionMetadata: PartitionMetadata[] = Array.from({ length: partitionCount }, (_, partitionId) => ({
    partitionErrorCode: 0,
    partitionId,
    leader: 0,
    replicas: [0],
    isr: [0],
  }));
  return (paymentId) => partition({ topic: 'results', partitionMetadata, message: { key: paymentId, value: null } });
}
