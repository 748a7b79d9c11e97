/** A partition's next offset to read: the offset after the last message done with on it. */
export interface NextOffset {
  topic: string;
  partition: number;
  offset: string;
}

/**
 * The offsets a consumer is done with since its last commit, committed when
 * asked (on an interval, and once more at close) instead of after every
 * fetched batch as kafkajs does with autoCommit on.
 *
 * Commits run one after another: kafkajs retries a refused commit for
 * seconds, and a later commit that overtook it would otherwise be undone by
 * its late failure putting older offsets back. A commit refused for good (a
 * rebalance, a coordinator move) is reported to `onRefused` and its offsets
 * go again with the next one, unless newer ones were noted since.
 */
export function createOffsetCommits(commit: (offsets: NextOffset[]) => Promise<void>, onRefused: (error: unknown) => void) {
  const noted = new Map<string, NextOffset>();
  const commitOnce = async () => {
    if (noted.size === 0) return;
    const offsets = [...noted.values()];
    noted.clear();
    try {
      await commit(offsets);
    } catch (error) {
      for (const entry of offsets) {
        const key = `${entry.topic}:${entry.partition}`;
        if (!noted.has(key)) noted.set(key, entry);
      }
      onRefused(error);
    }
  };
  let lastCommit: Promise<void> = Promise.resolve();
  return {
    /** Records that every message of the partition before `offset` (its next offset to read) is done with. */
    note(topic: string, partition: number, offset: string): void {
      noted.set(`${topic}:${partition}`, { topic, partition, offset });
    },
    /** Forgets offsets of partitions no longer this member's (after a rebalance): they are the new owner's to commit. */
    keepOnly(owned: (topic: string, partition: number) => boolean): void {
      for (const [key, entry] of noted) if (!owned(entry.topic, entry.partition)) noted.delete(key);
    },
    /** Commits what was noted, after the commit before it has settled; never rejects. */
    commit: (): Promise<void> => (lastCommit = lastCommit.then(commitOnce)),
  };
}
