// The cost of `?waitReplicas=1` (every write waits for a replica, WAIT) on a
// script write shaped like the orchestrator's create (an ~800-byte document and
// an index entry), against a primary that has one replica:
//   RW_PORT=<primary port> npx tsx bench/redis-wait.ts
// Runs each concurrency twice, alternating without/with the wait, and prints
// writes/s and latency (ms) per run; docs/benchmarks/redis-wait.md has a run.
import { createLogger } from '../runtime/logger';
import { createRedis } from '../runtime/redis';
const port = process.env.RW_PORT ?? '6379';
const LUA = "redis.call('HSET', KEYS[1], 'v', 1, 'doc', ARGV[1]); redis.call('ZADD', KEYS[2], 0, ARGV[2]); return 1";
async function run(url: string, total: number, concurrency: number) {
  const redis = createRedis(url, `rw:${Date.now()}:`, createLogger('rw', 'silent'));
  redis.defineCommand('rwWrite', { numberOfKeys: 2, lua: LUA });
  await redis.connect();
  const doc = 'x'.repeat(800);
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) {
      const i = next++;
      const t = performance.now();
      await (redis as unknown as { rwWrite: (...a: string[]) => Promise<number> }).rwWrite(`p:${i}`, 'idx', doc, String(i));
      latencies.push(performance.now() - t);
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.floor(p * (latencies.length - 1))]!.toFixed(2);
  await redis.quit();
  return `${(total / seconds).toFixed(0)} writes/s, p50 ${q(0.5)} ms, p99 ${q(0.99)} ms`;
}
(async () => {
  for (const concurrency of [1, 20, 100]) {
    for (let round = 0; round < 2; round++) {
      for (const wait of [false, true]) {
        const url = `redis://127.0.0.1:${port}${wait ? '?waitReplicas=1&waitTimeoutMs=1000' : ''}`;
        console.log(`concurrency ${concurrency} round ${round + 1} ${wait ? 'WAIT 1' : 'no wait'}: ${await run(url, concurrency === 1 ? 3000 : 20000, concurrency)}`);
      }
    }
  }
})();
