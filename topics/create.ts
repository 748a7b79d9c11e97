import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigResourceTypes, type Admin } from 'kafkajs';
import type { TopicSpec } from './names';

/**
 * Creates the topics that do not exist yet and leaves existing ones alone, so
 * it can run on every start-up. Resolves once every partition of every topic
 * has a leader, so producers can use them at once. Rejects when an existing
 * topic is laid out differently from its spec in a way that matters
 * ({@link topicLayoutProblems}): fewer copies than asked for, or another
 * partition count.
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
  const problems = await topicLayoutProblems(admin, specs);
  if (problems.length > 0) throw new Error(`existing topics do not match the configuration:\n- ${problems.join('\n- ')}`);
  return missing.map((spec) => spec.topic);
}

/** One topic as the brokers hold it. */
export interface TopicLayoutOnBrokers {
  topic: string;
  partitions: number;
  /** The fewest copies any of its partitions has. */
  replicationFactor: number;
  minInsyncReplicas: number;
  /** Partition → the node id of its leader (-1 without one). */
  leaders: Map<number, number>;
}

/** How the brokers hold these (existing) topics: partitions, copies, min.insync.replicas and leaders. */
export async function describeTopics(admin: Admin, topics: string[]): Promise<TopicLayoutOnBrokers[]> {
  const [{ topics: metadata }, configs] = await Promise.all([
    admin.fetchTopicMetadata({ topics }),
    admin.describeConfigs({ includeSynonyms: false, resources: topics.map((name) => ({ type: ConfigResourceTypes.TOPIC, name, configNames: ['min.insync.replicas'] })) }),
  ]);
  const inSync = new Map(configs.resources.map((resource) => [resource.resourceName, Number(resource.configEntries.find((entry) => entry.configName === 'min.insync.replicas')?.configValue ?? 1)]));
  return metadata.map((topic) => ({
    topic: topic.name,
    partitions: topic.partitions.length,
    replicationFactor: Math.min(...topic.partitions.map((partition) => partition.replicas.length)),
    minInsyncReplicas: inSync.get(topic.name) ?? 1,
    leaders: new Map(topic.partitions.map((partition) => [partition.partitionId, partition.leader])),
  }));
}

/**
 * What differs, in a way that matters, between the specs and the topics as
 * the brokers hold them: fewer copies or a lower min.insync.replicas than the
 * spec asks for (acknowledged messages could be lost), or another partition
 * count. A topic's partition count is not changed here: results and status
 * events are keyed by payment id, and adding partitions moves keys to other
 * partitions, so a payment's events would no longer be read in order
 * (docs/cluster.md#partitions). More copies than asked for is fine.
 */
export async function topicLayoutProblems(admin: Admin, specs: TopicSpec[]): Promise<string[]> {
  const actual = new Map((await describeTopics(admin, specs.map((spec) => spec.topic))).map((layout) => [layout.topic, layout]));
  const problems: string[] = [];
  for (const spec of specs) {
    const layout = actual.get(spec.topic);
    if (!layout) {
      problems.push(`${spec.topic}: missing`);
      continue;
    }
    if (spec.numPartitions !== undefined && spec.numPartitions > 0 && layout.partitions !== spec.numPartitions) {
      problems.push(`${spec.topic}: has ${layout.partitions} partitions, configured ${spec.numPartitions}; changing the partition count of an existing topic is not supported`);
    }
    if (spec.replicationFactor !== undefined && spec.replicationFactor > 0 && layout.replicationFactor < spec.replicationFactor) {
      problems.push(`${spec.topic}: has ${layout.replicationFactor} copies, configured ${spec.replicationFactor}`);
    }
    const wantedInSync = Number(spec.configEntries?.find((entry) => entry.name === 'min.insync.replicas')?.value ?? 0);
    if (layout.minInsyncReplicas < wantedInSync) problems.push(`${spec.topic}: min.insync.replicas is ${layout.minInsyncReplicas}, configured ${wantedInSync}`);
  }
  return problems;
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
