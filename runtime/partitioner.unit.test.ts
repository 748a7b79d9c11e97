import { randomUUID } from 'node:crypto';
import { Partitioners, type PartitionMetadata } from 'kafkajs';
import { rememberingPartitioner } from './kafka';

const metadataOf = (count: number): PartitionMetadata[] =>
  Array.from({ length: count }, (_, partitionId) => ({ partitionErrorCode: 0, partitionId, leader: 0, replicas: [0], isr: [0] }));

describe('remembering partitioner', () => {
  test("When a payment id is partitioned, then it lands where kafkajs' default partitioner puts it, for every partition count, the first time and after", () => {
    const remembering = rememberingPartitioner();
    const kafkajs = Partitioners.DefaultPartitioner();
    for (const count of [1, 3, 6, 12]) {
      const partitionMetadata = metadataOf(count);
      for (let i = 0; i < 200; i++) {
        const message = { key: randomUUID(), value: null };
        const expected = kafkajs({ topic: 't', partitionMetadata, message });
        expect(remembering({ topic: 't', partitionMetadata, message })).toBe(expected);
        expect(remembering({ topic: 'other', partitionMetadata, message })).toBe(expected);
      }
    }
  });

  test('When the same key is partitioned for topics of different partition counts, then each count gets its own answer', () => {
    const remembering = rememberingPartitioner();
    const kafkajs = Partitioners.DefaultPartitioner();
    const message = { key: 'c9a3b0f9-409d-42c6-b9d3-01efd924032d', value: null };
    for (const count of [6, 7, 6, 7]) {
      const partitionMetadata = metadataOf(count);
      expect(remembering({ topic: 't', partitionMetadata, message })).toBe(kafkajs({ topic: 't', partitionMetadata, message }));
    }
  });

  test('When a message names its partition, then that partition is used', () => {
    const remembering = rememberingPartitioner();
    expect(remembering({ topic: 't', partitionMetadata: metadataOf(6), message: { key: 'a', value: null, partition: 4 } })).toBe(4);
  });

  test('When a message has no key, then each partition is used in turn', () => {
    const remembering = rememberingPartitioner();
    const partitionMetadata = metadataOf(3);
    const chosen = new Set(Array.from({ length: 3 }, () => remembering({ topic: 't', partitionMetadata, message: { value: null } })));
    expect(chosen).toEqual(new Set([0, 1, 2]));
  });
});
