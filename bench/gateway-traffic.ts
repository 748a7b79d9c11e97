// What the orchestrator asked of each gateway during a failover scenario,
// read from the gateways' request topics (so it survives a killed
// orchestrator, whose /metrics are gone): attempts, the attempts it left for
// another gateway (failovers), and the cancel and compensate commands it
// sent. With healthy gateways every one of these but the first attempt is a
// false alarm: the orchestrator mistook its own delay for the gateway's.
import { randomUUID } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import { z } from 'zod';

const requestIdentity = z.object({
  type: z.enum(['attempt.requested', 'attempt.command']),
  paymentId: z.string(),
  attemptId: z.string(),
  command: z.enum(['cancel', 'compensate']).optional(),
});

export interface GatewayTraffic {
  gatewayId: string;
  /** attempt.requested messages (distinct attempts). */
  attempts: number;
  /** Attempts after which the payment was sent to another gateway. */
  failedOverFrom: number;
  cancels: number;
  compensations: number;
}

export interface TrafficWatch {
  /** Per gateway, in the rules' order. */
  tally(): GatewayTraffic[];
  malformed(): number;
  stop(): Promise<void>;
}

/** Reads every gateway's request topic from its beginning; resolves once the reader has its partitions. */
export async function watchGatewayTraffic(kafka: Kafka, topics: ReadonlyMap<string, string>): Promise<TrafficWatch> {
  const gatewayOfTopic = new Map([...topics].map(([gatewayId, topic]) => [topic, gatewayId]));
  // Per payment, its attempts in the order they were requested (one partition per payment: in order).
  const attemptsOf = new Map<string, Array<{ gatewayId: string; attemptId: string }>>();
  const commands = new Map<string, { cancels: number; compensations: number }>();
  for (const gatewayId of topics.keys()) commands.set(gatewayId, { cancels: 0, compensations: 0 });
  let malformed = 0;

  const consumer = kafka.consumer({ groupId: `bench-gateway-traffic-${randomUUID()}`, maxWaitTimeInMs: 250 });
  const joined = new Promise<void>((resolve) => {
    const remove = consumer.on(consumer.events.GROUP_JOIN, () => {
      remove();
      resolve();
    });
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [...topics.values()], fromBeginning: true });
  await consumer.run({
    partitionsConsumedConcurrently: 6,
    eachMessage: async ({ topic, message }) => {
      const gatewayId = gatewayOfTopic.get(topic);
      let parsed: z.infer<typeof requestIdentity>;
      try {
        parsed = requestIdentity.parse(JSON.parse(message.value?.toString('utf8') ?? ''));
      } catch {
        malformed++;
        return;
      }
      if (gatewayId === undefined) return;
      if (parsed.type === 'attempt.requested') {
        const attempts = attemptsOf.get(parsed.paymentId) ?? [];
        // A request published twice (at-least-once) is one attempt.
        if (!attempts.some((attempt) => attempt.attemptId === parsed.attemptId)) attempts.push({ gatewayId, attemptId: parsed.attemptId });
        attemptsOf.set(parsed.paymentId, attempts);
        return;
      }
      const counts = commands.get(gatewayId);
      if (!counts) return;
      if (parsed.command === 'cancel') counts.cancels++;
      else if (parsed.command === 'compensate') counts.compensations++;
    },
  });
  await joined;

  return {
    tally() {
      const result = new Map<string, GatewayTraffic>();
      for (const [gatewayId, counts] of commands) result.set(gatewayId, { gatewayId, attempts: 0, failedOverFrom: 0, ...counts });
      for (const attempts of attemptsOf.values()) {
        attempts.forEach(({ gatewayId }, index) => {
          const entry = result.get(gatewayId);
          if (!entry) return;
          entry.attempts++;
          if (index < attempts.length - 1) entry.failedOverFrom++;
        });
      }
      return [...result.values()];
    },
    malformed: () => malformed,
    stop: () => consumer.disconnect(),
  };
}
