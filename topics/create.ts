import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin } from 'kafkajs';
import type { TopicSpec } from './names';

/**
 * Creates the topics that do not exist yet and leaves existing ones alone, so
 * it can run on every start-up. Resolves once every partition of every topic
 * has a leader, so producers can use them at once.
 */
export async function ensureTopics(admin: Admin, specs: TopicSpec[], timeoutMs = 30_000): Promise<string[]> {
  const existing = new Set(await admin.listTopics());
  const missing = specs.filter((spec) => !existing.has(spec.topic));
  if (missing.length > 0) {
    try {
      await admin.createTopics({ topics: missing, waitForLeaders: false });
    } catch (error) {
      // Another process may have created some of them between list and create.
      const nowExisting = new Set(await admin.listTopics());
      if (!missing.every((spec) => nowExisting.has(spec.topic))) throw error;
    }
  }
  await untilLeadersElected(admin, specs.map((spec) => spec.topic), timeoutMs);
  return missing.map((spec) => spec.topic);
}

/**
 * kafkajs' own `waitForLeaders` gives up on the transient "does not host this
 * topic-partition" a KRaft broker answers right after creation, so this polls
 * the metadata until every partition has a leader.
 */
async function untilLeadersElected(admin: Admin, topics: string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const { topics: metadata } = await admin.fetchTopicMetadata({ topics });
      const ready = metadata.length === topics.length && metadata.every((topic) => topic.partitions.length > 0 && topic.partitions.every((partition) => partition.leader >= 0));
      // A leader named in the metadata may not serve yet: asking each topic's offsets proves it does.
      if (ready) {
        await Promise.all(topics.map((topic) => admin.fetchTopicOffsets(topic)));
        return;
      }
    } catch (error) {
      if (Date.now() > deadline) throw error;
    }
    if (Date.now() > deadline) throw new Error(`topics without a leader after ${timeoutMs} ms: ${topics.join(', ')}`);
    await sleep(100);
  }
}
