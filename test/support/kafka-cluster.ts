import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Kafka } from 'kafkajs';
import { startLocalKafka, type LocalKafka, type LocalKafkaNode } from '../../scripts/kafka-local';
import { freePort } from '../../scripts/processes';
import { describeTopics } from '../../topics/create';
import { harnessKafka, kafkaSecurity } from './env';
import { pollUntil } from './poll';

export interface OwnedKafkaCluster {
  /** The KAFKA_BROKERS value. */
  brokers: string;
  nodes: LocalKafkaNode[];
  /** The settings for its topics: three copies, two in sync. */
  layout: { replicationFactor: number; minInsyncReplicas: number };
  /** SIGKILLs one node's JVM and resolves once the process is gone. */
  kill(nodeId: number): Promise<void>;
  /** Resolves once the cluster's metadata lists exactly these brokers (a killed one is fenced). */
  untilBrokers(nodeIds: number[], timeoutMs?: number): Promise<void>;
  /** Stops every node and deletes the data. */
  dispose(): Promise<void>;
}

/**
 * A three-node KRaft cluster owned by one test file, on free ports with a
 * data directory of its own, started by the same script as `npm run kafka --
 * start --brokers 3`, with the test run's security (SASL/SCRAM and ACLs on the
 * project's machines).
 */
export async function startKafkaCluster(brokerCount = 3): Promise<OwnedKafkaCluster> {
  const ports: number[] = [];
  const controllerPorts: number[] = [];
  for (let index = 0; index < brokerCount; index++) {
    ports.push(await freePort());
    controllerPorts.push(await freePort());
  }
  const dataDir = mkdtempSync(path.join(tmpdir(), 'pgo-test-cluster-'));
  let kafka: LocalKafka;
  try {
    // stopOnExit: if the jest worker dies before dispose(), the reaper stops the nodes.
    kafka = await startLocalKafka({ port: ports[0]!, ports, controllerPorts, brokers: brokerCount, dataDir, quiet: true, security: kafkaSecurity(), stopOnExit: true });
  } catch (error) {
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
  const admin = harnessKafka(kafka.brokers, 'test-cluster').admin();

  return {
    brokers: kafka.brokers,
    nodes: kafka.nodes,
    layout: { replicationFactor: Math.min(3, brokerCount), minInsyncReplicas: brokerCount >= 3 ? 2 : 1 },
    async kill(nodeId) {
      const node = kafka.nodes.find((candidate) => candidate.nodeId === nodeId);
      const pid = node?.pid();
      if (!pid) throw new Error(`node ${nodeId} is not running`);
      process.kill(pid, 'SIGKILL');
      // Not our child (the script started it in its own session): poll until the pid is gone.
      await pollUntil(
        async () => {
          try {
            process.kill(pid, 0);
            return true;
          } catch {
            return false;
          }
        },
        (alive) => !alive,
        10_000,
        () => `node ${nodeId} (pid ${pid}) still alive 10 s after SIGKILL`,
      );
    },
    async untilBrokers(nodeIds, timeoutMs = 30_000) {
      const wanted = [...nodeIds].sort().join(',');
      await admin.connect();
      try {
        await pollUntil(
          async () => (await admin.describeCluster().catch(() => ({ brokers: [] }))).brokers.map((broker) => broker.nodeId).sort().join(','),
          (listed) => listed === wanted,
          timeoutMs,
          (listed) => `cluster lists brokers [${listed}], not [${wanted}], after ${timeoutMs} ms`,
          200,
        );
      } finally {
        await admin.disconnect();
      }
    },
    async dispose() {
      await kafka.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The node that leads the most partitions of these topics, and how many it leads. */
export async function busiestLeader(kafka: Kafka, topics: string[]): Promise<{ nodeId: number; partitions: number }> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const counts = new Map<number, number>();
    for (const topic of await describeTopics(admin, topics)) {
      for (const leader of topic.leaders.values()) counts.set(leader, (counts.get(leader) ?? 0) + 1);
    }
    const [nodeId, partitions] = [...counts].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0] ?? [-1, 0];
    return { nodeId, partitions };
  } finally {
    await admin.disconnect();
  }
}
