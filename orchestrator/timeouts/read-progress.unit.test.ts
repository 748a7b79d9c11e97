import type { Redis } from '../../runtime/redis';
import { createLogger } from '../../runtime/logger';
import { createResultsReadProgress, READ_THROUGH_KEY, type ReadProgressDeps } from './read-progress';

/** The two sorted-set commands the read progress uses, over a Map: enough to check its logic without a server. */
function fakeRedis() {
  const sets = new Map<string, Map<string, number>>();
  const set = (key: string) => sets.get(key) ?? sets.set(key, new Map()).get(key)!;
  const redis = {
    pipeline() {
      const replies: Array<() => unknown> = [];
      const chain = {
        zadd(key: string, _gt: 'GT', ...pairs: Array<string | number>) {
          replies.push(() => {
            for (let index = 0; index < pairs.length; index += 2) {
              const [score, member] = [Number(pairs[index]), String(pairs[index + 1])];
              if (score > (set(key).get(member) ?? -Infinity)) set(key).set(member, score);
            }
            return 1;
          });
          return chain;
        },
        zrange(key: string) {
          replies.push(() => [...set(key)].sort(([, a], [, b]) => a - b).flatMap(([member, score]) => [member, String(score)]));
          return chain;
        },
        async exec() {
          return replies.map((reply) => [null, reply()]);
        },
      };
      return chain;
    },
  };
  return { redis: redis as unknown as Redis, sets };
}

interface KafkaView {
  high: number[];
  committed: number[];
  leaders: number[];
  down?: boolean;
}

function harness(view: KafkaView, start = 100_000) {
  let now = start;
  let looks = 0;
  const { redis, sets } = fakeRedis();
  const admin: ReadProgressDeps['admin'] = {
    fetchTopicOffsets: async () => {
      looks += 1;
      if (view.down) throw new Error('connection refused');
      return view.high.map((high, partition) => ({ partition, offset: String(high), high: String(high), low: '0' }));
    },
    fetchOffsets: async () => [{ topic: 'results', partitions: view.committed.map((offset, partition) => ({ partition, offset: String(offset), metadata: null })) }],
    fetchTopicMetadata: async () => ({
      topics: [{ name: 'results', partitions: view.leaders.map((leader, partitionId) => ({ partitionId, leader, isr: [leader], replicas: [leader], partitionErrorCode: 0, offlineReplicas: [] })) }],
    }),
  };
  const progress = createResultsReadProgress({
    admin,
    groupId: 'orchestrator',
    topic: 'results',
    partitionCount: view.high.length,
    redis,
    clock: () => new Date(now),
    allowanceMs: 250,
    settleMs: 5_000,
    lookEveryMs: 500,
    logger: createLogger('read-progress-test', 'silent'),
  });
  return {
    progress,
    sets,
    /** How many times the log ends were asked for. */
    looks: () => looks,
    advance: (ms: number) => {
      now += ms;
    },
    now: () => now,
  };
}

describe('results read progress', () => {
  test('When nothing is known about a partition, then its read-through time is 0, so no deadline on it can fire', async () => {
    const { progress } = harness({ high: [5, 5], committed: [2, 2], leaders: [1, 1] });
    expect(await progress.refresh()).toEqual([0, 0]);
  });

  test('When a result is applied, then its partition is read through its broker timestamp, and only that partition', async () => {
    const { progress } = harness({ high: [9, 9], committed: [2, 2], leaders: [1, 1] });
    progress.observe({ partition: 1, offset: '4', timestampMs: 90_000 });
    expect(await progress.refresh()).toEqual([0, 90_000]);
  });

  test('When the group has applied everything up to the log end, then the partition is read through the time the end was asked for, less the allowance', async () => {
    const { progress, now } = harness({ high: [5, 7], committed: [5, 3], leaders: [1, 1] });
    expect(await progress.refresh()).toEqual([now() - 250, 0]);
  });

  test("When this instance's own position reached the log end before its commit did, then that counts too", async () => {
    const { progress, now } = harness({ high: [5], committed: [3], leaders: [1] });
    progress.observe({ partition: 0, offset: '4', timestampMs: 1_000 });
    expect(await progress.refresh()).toEqual([now() - 250]);
  });

  test('When a partition was never committed and holds nothing, then it is read to its end', async () => {
    const { progress, now } = harness({ high: [0], committed: [-1], leaders: [1] });
    expect(await progress.refresh()).toEqual([now() - 250]);
  });

  test('When another instance already stated a later time, then an earlier one never lowers it', async () => {
    const { progress, sets } = harness({ high: [9], committed: [2], leaders: [1] });
    sets.set(READ_THROUGH_KEY, new Map([['0', 95_000]]));
    progress.observe({ partition: 0, offset: '2', timestampMs: 90_000 });
    expect(await progress.refresh()).toEqual([95_000]);
  });

  test('When results keep waiting unread, then the backlog is how long the partition has stayed behind since it was read through; once read to the end, it is 0', async () => {
    const view = { high: [9], committed: [2], leaders: [1] };
    const { progress, advance } = harness(view);
    view.committed = [9];
    await progress.refresh();
    expect(progress.backlogMs(0)).toBe(0);
    view.high = [12];
    advance(1_000);
    await progress.refresh();
    // First seen behind now: results appended before this look may have arrived just now.
    expect(progress.backlogMs(0)).toBe(0);
    advance(3_000);
    await progress.refresh();
    expect(progress.backlogMs(0)).toBe(3_000);
    view.committed = [12];
    advance(100);
    await progress.refresh();
    expect(progress.backlogMs(0)).toBe(0);
  });

  test('When the brokers do not answer, then deadlines after the last healthy moment wait until the settle time after they answer again, and the backlog is unknown, not growing', async () => {
    const view: KafkaView = { high: [5], committed: [5], leaders: [1] };
    const { progress, advance, now } = harness(view);
    await progress.refresh();
    const healthy = now();
    view.down = true;
    advance(2_000);
    progress.observe({ partition: 0, offset: '5', timestampMs: now() });
    expect(await progress.refresh()).toEqual([healthy]);
    expect(progress.backlogMs(0)).toBe(0);
    view.down = false;
    advance(1_000);
    expect(await progress.refresh()).toEqual([healthy]);
    advance(5_000);
    expect(await progress.refresh()).toEqual([now() - 250]);
  });

  test('When a results partition changes leader (a broker lost), then deadlines after the last healthy moment wait for the settle time', async () => {
    const view: KafkaView = { high: [5, 5], committed: [5, 5], leaders: [1, 2] };
    const { progress, advance, now } = harness(view);
    await progress.refresh();
    const healthy = now();
    view.leaders = [1, 3];
    advance(500);
    expect(await progress.refresh()).toEqual([healthy, healthy]);
    // Consumers reconnecting after a disruption are not overload: nothing refused while the hold lasts.
    view.high = [9, 9];
    await progress.refresh();
    advance(3_000);
    await progress.refresh();
    expect(progress.backlogMs(0)).toBe(0);
    view.high = [5, 5];
    advance(5_001);
    expect(await progress.refresh()).toEqual([now() - 250, now() - 250]);
  });
  describe('how often it asks Kafka for the log ends', () => {
    test('When no deadline is due, then the log ends are asked for once per lookEveryMs, and applied results are still published at every refresh', async () => {
      const { progress, advance, looks } = harness({ high: [9], committed: [2], leaders: [1] });
      await progress.refresh(false);
      expect(looks()).toBe(1);
      advance(100);
      progress.observe({ partition: 0, offset: '5', timestampMs: 99_000 });
      expect(await progress.refresh(false)).toEqual([99_000]);
      advance(100);
      await progress.refresh(false);
      expect(looks()).toBe(1);
      advance(300);
      await progress.refresh(false);
      expect(looks()).toBe(2);
    });

    test('When a deadline is due, then every refresh asks, so a partition read to its end counts as of now', async () => {
      const { progress, advance, looks, now } = harness({ high: [5], committed: [5], leaders: [1] });
      await progress.refresh(false);
      advance(100);
      expect(await progress.refresh(true)).toEqual([now() - 250]);
      advance(100);
      expect(await progress.refresh(true)).toEqual([now() - 250]);
      expect(looks()).toBe(3);
    });

    test('When a partition fell behind after the last look, then the backlog says so by the next look, not before', async () => {
      const view = { high: [9], committed: [9], leaders: [1] };
      const { progress, advance } = harness(view);
      await progress.refresh(false);
      view.high = [12];
      advance(400);
      await progress.refresh(false);
      expect(progress.backlogMs(0)).toBe(0);
      advance(100);
      await progress.refresh(false);
      advance(2_500);
      await progress.refresh(false);
      expect(progress.backlogMs(0)).toBe(2_500);
    });

    test('When the brokers stop answering between looks, then the next sweep with a deadline due finds it and holds the deadlines', async () => {
      const view: KafkaView = { high: [5], committed: [5], leaders: [1] };
      const { progress, advance, now } = harness(view);
      await progress.refresh(false);
      const healthy = now();
      view.down = true;
      advance(100);
      // A result applied since would read the partition through now; the hold keeps it at the last healthy look.
      progress.observe({ partition: 0, offset: '5', timestampMs: now() });
      expect(await progress.refresh(true)).toEqual([healthy]);
    });
  });
});
