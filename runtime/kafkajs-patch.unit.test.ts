import { randomUUID } from 'node:crypto';

// The patch npm ci applies to kafkajs 2.2.4 (patches/kafkajs+2.2.4.patch, docs/decisions/0020): a
// connection with nothing waiting keeps no timer. Without it every connection that had answered a
// request re-armed a timer each millisecond forever (kafkajs issues #1556 and #1704).
// eslint-disable-next-line @typescript-eslint/no-require-imports -- kafkajs' internal class has no types
const RequestQueue = require('kafkajs/src/network/requestQueue') as new (options: object) => {
  checkPendingRequests(): void;
  push(request: object): void;
  maybeThrottle(ms: number): void;
  fulfillRequest(response: { correlationId: number; payload: Buffer; size: number }): void;
  destroy(): void;
};

const silent = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const queueOf = () => new RequestQueue({ maxInFlightRequests: 1, requestTimeout: 30_000, enforceRequestTimeout: false, clientId: 'test', broker: 'b1', logger: silent });
const request = (correlationId: number, sendRequest: () => void) => ({
  entry: { correlationId, apiKey: 0, apiName: 'Produce', apiVersion: 3, resolve: () => undefined, reject: () => undefined },
  expectResponse: true,
  sendRequest,
});

describe('kafkajs request queue, as patched', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  test('When nothing waits to be sent, then checking the queue leaves no timer behind', () => {
    const queue = queueOf();
    queue.checkPendingRequests();
    expect(jest.getTimerCount()).toBe(0);
  });

  test('When the only request in flight is answered, then the queue keeps no timer running', () => {
    const queue = queueOf();
    const sent = jest.fn();
    queue.push(request(1, sent));
    expect(sent).toHaveBeenCalledTimes(1);
    queue.fulfillRequest({ correlationId: 1, payload: Buffer.alloc(0), size: 0 });
    expect(jest.getTimerCount()).toBe(0);
  });

  test('When the broker throttles the client, then a request waiting behind it is still sent once the throttle ends', () => {
    const queue = queueOf();
    queue.maybeThrottle(50);
    const sent = jest.fn();
    queue.push(request(1, sent));
    expect(sent).not.toHaveBeenCalled();
    jest.advanceTimersByTime(49);
    expect(sent).not.toHaveBeenCalled();
    jest.advanceTimersByTime(11);
    expect(sent).toHaveBeenCalledTimes(1);
  });

  test('When a second request waits behind the one in flight, then it is sent as soon as the first is answered', () => {
    const queue = queueOf();
    const first = jest.fn();
    const second = jest.fn();
    queue.push(request(1, first));
    queue.push(request(2, second));
    expect(second).not.toHaveBeenCalled();
    queue.fulfillRequest({ correlationId: 1, payload: Buffer.alloc(0), size: 0 });
    expect(second).toHaveBeenCalledTimes(1);
  });
});

// The allocation patches (same patch file, ADR 0020): murmur2 in 32-bit arithmetic instead of a Long object per step,
// varints written in place, encoders not zero-filled, and records built without adding keys after a spread. Each must
// give the bytes and partitions unpatched kafkajs gives: Kafka's own test vectors and kafkajs' own decoders say so.
/* eslint-disable @typescript-eslint/no-require-imports -- kafkajs' internal modules have no types */
const murmur2 = require('kafkajs/src/producer/partitioners/default/murmur2') as (key: string | Buffer) => number;
const Long = require('kafkajs/src/utils/long') as { fromValue(value: unknown): unknown };
const Encoder = require('kafkajs/src/protocol/encoder') as {
  new (): { writeVarInt(value: number): unknown; writeVarLong(value: unknown): unknown; buffer: Buffer };
  sizeOfVarLong(value: unknown): number;
};
const Decoder = require('kafkajs/src/protocol/decoder') as new (buffer: Buffer) => {
  readVarInt(): number;
  readVarLong(): { toString(): string };
  readString(): string | null;
  readInt16(): number;
  readInt32(): number;
  readArray<T>(read: (decoder: InstanceType<typeof Decoder>) => T): T[];
};
const produceRequest = require('kafkajs/src/protocol/requests/produce/v3/request') as (request: object) => { encode(): Promise<{ buffer: Buffer }> };
const groupMessagesPerPartition = require('kafkajs/src/producer/groupMessagesPerPartition') as (request: object) => Record<string, Array<{ key: string }>>;
const decodeRecordBatch = require('kafkajs/src/protocol/recordBatch/v0/decoder') as (decoder: object) => Promise<{
  records: Array<{ key: Buffer | null; value: Buffer | null; headers: Record<string, Buffer>; offset: string }>;
}>;
/* eslint-enable @typescript-eslint/no-require-imports */

/** Java's murmur2 (org.apache.kafka.common.utils.Utils), written with BigInt masks: an independent reference. */
function referenceMurmur2(data: Buffer): number {
  const M = 0x5bd1e995n;
  const mask = (value: bigint) => BigInt.asUintN(32, value);
  let h = mask(0x9747b28cn ^ BigInt(data.length));
  const length4 = Math.floor(data.length / 4);
  for (let i = 0; i < length4; i++) {
    let k = mask(BigInt(data.readUInt32LE(i * 4)) * M);
    k = mask((k ^ (k >> 24n)) * M);
    h = mask(mask(h * M) ^ k);
  }
  const tail = data.length & ~3;
  const rest = data.length % 4;
  if (rest >= 3) h ^= BigInt(data[tail + 2]!) << 16n;
  if (rest >= 2) h ^= BigInt(data[tail + 1]!) << 8n;
  if (rest >= 1) h = mask((h ^ BigInt(data[tail]!)) * M);
  h = mask((h ^ (h >> 13n)) * M);
  return Number(BigInt.asIntN(32, h ^ (h >> 15n)));
}

describe('kafkajs murmur2, as patched', () => {
  afterEach(() => jest.restoreAllMocks());

  test("When Kafka's own test keys are hashed, then they give the Java client's values", () => {
    // org.apache.kafka.common.utils.UtilsTest#testMurmur2
    const cases: Array<[string, number]> = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
      ['abc', 479470107],
    ];
    for (const [key, expected] of cases) expect(murmur2(key)).toBe(expected);
  });

  test('When keys of every length and byte are hashed, then each gives what the reference murmur2 gives', () => {
    for (let i = 0; i < 2_000; i++) {
      const key = i % 2 === 0 ? randomUUID() : Buffer.from(Array.from({ length: i % 70 }, (_, j) => (i * 31 + j * 97) % 256));
      expect(murmur2(key)).toBe(referenceMurmur2(Buffer.isBuffer(key) ? key : Buffer.from(key)));
    }
  });

  test('When a key is hashed, then no 64-bit Long is built', () => {
    const fromValue = jest.spyOn(Long, 'fromValue');
    murmur2(randomUUID());
    expect(fromValue).not.toHaveBeenCalled();
  });
});

describe('kafkajs encoder, as patched', () => {
  afterEach(() => jest.restoreAllMocks());
  const edges = [0, 1, -1, 63, 64, -64, -65, 127, 128, 8191, 8192, 2 ** 20, -(2 ** 20), 2 ** 30 - 1, -(2 ** 30), 2 ** 30, -(2 ** 30) - 1, 2 ** 31 - 1, -(2 ** 31)];

  test("When varints are written, then kafkajs' decoder reads back each value", () => {
    for (const value of edges) {
      const encoder = new Encoder();
      encoder.writeVarInt(value);
      expect(new Decoder(encoder.buffer).readVarInt()).toBe(value);
    }
  });

  test('When varlongs are written as numbers, then they are the bytes of the same value as a Long, and read back', () => {
    for (const value of [...edges, 1_700_000_000_000, -1_700_000_000_000, Number.MAX_SAFE_INTEGER]) {
      const asNumber = new Encoder();
      asNumber.writeVarLong(value);
      const asLong = new Encoder();
      asLong.writeVarLong(Long.fromValue(value));
      expect(asNumber.buffer).toEqual(asLong.buffer);
      expect(Encoder.sizeOfVarLong(value)).toBe(asNumber.buffer.length);
      expect(new Decoder(asNumber.buffer).readVarLong().toString()).toBe(String(value));
    }
  });

  test('When a record is encoded, then neither a zero-filled buffer nor a buffer per varint is made', () => {
    const alloc = jest.spyOn(Buffer, 'alloc');
    const from = jest.spyOn(Buffer, 'from');
    const encoder = new Encoder();
    encoder.writeVarInt(300);
    encoder.writeVarLong(5);
    expect(alloc).not.toHaveBeenCalled();
    expect(from).not.toHaveBeenCalled();
  });

  test("When a produce request is encoded, then kafkajs' record batch decoder reads back every key, value, header and offset", async () => {
    const messages = [
      { key: 'pay-1', value: '{"type":"payment.status"}', timestamp: 1_700_000_000_000 },
      { key: 'pay-2', value: 'ünïcode ✓', headers: { signature: 'abc' }, timestamp: 1_700_000_000_250 },
    ];
    const { buffer } = await produceRequest({ acks: -1, timeout: 30_000, topicData: [{ topic: 't', partitions: [{ partition: 3, messages }] }] }).encode();
    const decoder = new Decoder(buffer);
    expect(decoder.readString()).toBeNull(); // transactional id
    expect([decoder.readInt16(), decoder.readInt32(), decoder.readInt32()]).toEqual([-1, 30_000, 1]); // acks, timeout, topics
    expect([decoder.readString(), decoder.readInt32(), decoder.readInt32()]).toEqual(['t', 1, 3]); // topic, partitions, partition
    decoder.readInt32(); // the record set's size
    const { records } = await decodeRecordBatch(decoder);
    expect(records.map(({ key, value, headers, offset }) => [key?.toString(), value?.toString(), Object.keys(headers).map((name) => `${name}=${String(headers[name])}`), offset])).toEqual([
      ['pay-1', '{"type":"payment.status"}', [], '0'],
      ['pay-2', 'ünïcode ✓', ['signature=abc'], '1'],
    ]);
  });
});

describe('kafkajs grouping of a produce request by partition, as patched', () => {
  test('When messages are grouped, then each partition gets its messages in the order they were given, and none is lost', () => {
    const partitionMetadata = Array.from({ length: 4 }, (_, partitionId) => ({ partitionId, leader: 0 }));
    const messages = Array.from({ length: 500 }, (_, i) => ({ key: `pay-${i % 37}`, value: String(i) }));
    const partitioner = ({ message }: { message: { key: string } }) => Number(message.key.slice(4)) % 4;
    const grouped = groupMessagesPerPartition({ topic: 't', partitionMetadata, messages, partitioner });
    expect(Object.keys(grouped).sort()).toEqual(['0', '1', '2', '3']);
    for (const [partition, inPartition] of Object.entries(grouped)) {
      expect(inPartition).toEqual(messages.filter((message) => partitioner({ message }) === Number(partition)));
    }
  });

  test('When the topic has no partition metadata, then nothing is grouped', () => {
    expect(groupMessagesPerPartition({ topic: 't', partitionMetadata: [], messages: [{ key: 'a', value: 'b' }], partitioner: () => 0 })).toEqual({});
  });
});

// eslint-disable-next-line @typescript-eslint/no-require-imports -- kafkajs' internal checksum has no types
const crc32C = require('kafkajs/src/protocol/recordBatch/crc32C') as (buffer: Buffer) => number;
// eslint-disable-next-line @typescript-eslint/no-require-imports -- the loop the patch replaced, kept in kafkajs as it was
const byteAtATime = require('kafkajs/src/protocol/recordBatch/crc32C/crc32C') as (buffer: Buffer) => number;

describe('kafkajs record batch checksum (CRC-32C), as patched', () => {
  test('When the standard check input is summed, then it gives the CRC-32C check value', () => {
    // RFC 3720 (iSCSI), B.4, and every CRC catalogue: CRC-32C("123456789") = 0xE3069283.
    expect(crc32C(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32C(Buffer.alloc(0))).toBe(0);
  });

  test("When buffers of every length up to a record batch's are summed, then each gives kafkajs' own unsigned value", () => {
    for (let length = 0; length < 3_000; length += length < 64 ? 1 : 37) {
      const buffer = Buffer.from(Array.from({ length }, (_, i) => (length * 131 + i * 251) % 256));
      expect(crc32C(buffer)).toBe(byteAtATime(buffer) >>> 0);
    }
  });
});
