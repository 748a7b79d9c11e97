import type { Admin } from 'kafkajs';
import type { TopicSpec } from './names';

/**
 * Creates the topics that do not exist yet and leaves existing ones alone, so
 * it can run on every start-up. Waits for partition leaders, so a producer can
 * use the topics as soon as this resolves.
 */
export async function ensureTopics(admin: Admin, specs: TopicSpec[]): Promise<string[]> {
  const existing = new Set(await admin.listTopics());
  const missing = specs.filter((spec) => !existing.has(spec.topic));
  if (missing.length === 0) return [];
  try {
    await admin.createTopics({ topics: missing, waitForLeaders: true });
  } catch (error) {
    // Another process may have created some of them between list and create.
    const nowExisting = new Set(await admin.listTopics());
    if (!missing.every((spec) => nowExisting.has(spec.topic))) throw error;
  }
  return missing.map((spec) => spec.topic);
}
