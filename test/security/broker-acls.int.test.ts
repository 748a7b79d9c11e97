import { Kafka, logLevel, type Producer } from 'kafkajs';
import { DEFAULT_PRINCIPALS, TOPIC_RIGHTS, type Service } from '../../topics/acls';
import type { TopicNames } from '../../topics/names';
import { localKafkaUsers } from '../../scripts/kafka-local';
import { isolatedNamespace, kafkaSecurity } from '../support/env';
import { prepareNamespace, rule } from '../support/stack';

/**
 * The broker itself keeps each service to the topics it owns (issue 12): the
 * test run's local broker authenticates with SASL/SCRAM-SHA-512 and authorizes
 * with Kafka's StandardAuthorizer, and the harness gave this namespace the
 * ACLs of topics/acls.ts, as `npm run topics:create` does. Each client here
 * connects with one service's credentials from scripts/kafka/local-users.
 */
const security = kafkaSecurity();
const describeOnSasl = security === 'sasl' ? describe : describe.skip;
if (security !== 'sasl') {
  process.stderr.write('test/security/broker-acls: skipped, this run\'s broker has no authentication (KAFKA_BROKERS or a container)\n');
}

const users = security === 'sasl' ? localKafkaUsers() : new Map<string, string>();

/** A client of the run's broker as `username`, failing fast: no retries, short timeouts. */
function clientAs(brokers: string, username: string | undefined, password = username ? users.get(username) : undefined): Kafka {
  return new Kafka({
    clientId: `acl-test-${username ?? 'anonymous'}`,
    brokers: brokers.split(','),
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
    connectionTimeout: 2_000,
    requestTimeout: 5_000,
    ...(username ? { sasl: { mechanism: 'scram-sha-512' as const, username, password: password ?? '' } } : {}),
  });
}

/** The broker's error code for a refused send, as kafkajs reports it (the protocol error is the cause of a non-retriable error). */
function brokerErrorType(error: unknown): string | undefined {
  for (let current: unknown = error; current instanceof Error; current = (current as { cause?: unknown }).cause) {
    const { type } = current as { type?: string };
    if (type) return type;
  }
  return undefined;
}

/** Sends one message; resolves with `ok` or the broker's error type (or the error's name when the broker gave none). */
async function trySend(producer: Producer, topic: string): Promise<string> {
  try {
    await producer.send({ topic, acks: -1, messages: [{ key: 'acl-test', value: '{"probe":true}' }] });
    return 'ok';
  } catch (error) {
    return brokerErrorType(error) ?? (error instanceof Error ? `${error.name}: ${error.message}` : String(error));
  }
}

describeOnSasl('broker authentication and ACLs (SASL/SCRAM, StandardAuthorizer)', () => {
  let brokers: string;
  let prefix: string;
  let topics: TopicNames;
  let harness: Kafka;
  const producers: Producer[] = [];
  const producerAs = async (username: string) => {
    const producer = clientAs(brokers, username).producer({ allowAutoTopicCreation: false });
    await producer.connect();
    producers.push(producer);
    return producer;
  };
  /** How many messages the topic holds (the sum of its partitions' end offsets), read by the harness (super user). */
  const endOffset = async (topic: string) => {
    const admin = harness.admin();
    await admin.connect();
    try {
      return (await admin.fetchTopicOffsets(topic)).reduce((sum, partition) => sum + Number(partition.high), 0);
    } finally {
      await admin.disconnect();
    }
  };

  beforeAll(async () => {
    const ns = isolatedNamespace();
    brokers = ns.brokers;
    prefix = ns.topicPrefix;
    ({ topics, kafka: harness } = await prepareNamespace(ns, [rule('alpha'), rule('beta')]));
  });
  afterAll(async () => {
    for (const producer of producers) await producer.disconnect();
  });

  test('When a client with the gateway\'s credentials produces to the rules or the health topic, then the broker refuses it (TOPIC_AUTHORIZATION_FAILED) and nothing is written', async () => {
    const gateway = await producerAs('gateway');
    const before = { rules: await endOffset(topics.rules), health: await endOffset(topics.gatewayHealth) };

    expect(await trySend(gateway, topics.rules)).toBe('TOPIC_AUTHORIZATION_FAILED');
    expect(await trySend(gateway, topics.gatewayHealth)).toBe('TOPIC_AUTHORIZATION_FAILED');
    // Nor may it send attempts to another gateway, or publish payment states.
    expect(await trySend(gateway, topics.gatewayRequests('beta'))).toBe('TOPIC_AUTHORIZATION_FAILED');
    expect(await trySend(gateway, topics.paymentStatus)).toBe('TOPIC_AUTHORIZATION_FAILED');

    expect({ rules: await endOffset(topics.rules), health: await endOffset(topics.gatewayHealth) }).toEqual(before);
    // The same client may answer: the refusals are its rights, not a broken connection.
    expect(await trySend(gateway, topics.gatewayResults)).toBe('ok');
  });

  test('When a client with the gateway\'s credentials reads the rules topic in its own group, then the broker refuses it', async () => {
    const consumer = clientAs(brokers, 'gateway').consumer({ groupId: `${prefix}gateway-alpha` });
    await consumer.connect();
    try {
      const refused = await consumer.subscribe({ topics: [topics.rules], fromBeginning: true }).then(
        () => consumer.run({ eachMessage: async () => undefined }).then(() => 'ok'),
        (error: unknown) => brokerErrorType(error) ?? String(error),
      );
      // kafkajs checks the topic's metadata on subscribe; a refused topic never gets as far as a fetch.
      expect(refused).toBe('TOPIC_AUTHORIZATION_FAILED');
    } finally {
      await consumer.disconnect();
    }
  });

  test('When a client connects without credentials, then the broker closes the connection and answers no request', async () => {
    const anonymous = clientAs(brokers, undefined);
    const admin = anonymous.admin();
    await expect(admin.connect().then(() => admin.listTopics())).rejects.toThrow(/Closed connection|connection/i);
    await admin.disconnect();
    const producer = anonymous.producer();
    await expect(producer.connect().then(() => producer.send({ topic: topics.rules, messages: [{ key: 'alpha', value: 'forged' }] }))).rejects.toThrow();
    await producer.disconnect();
  });

  test('When a client gives a known user with a wrong password, then SASL authentication fails', async () => {
    const admin = clientAs(brokers, 'admin', 'not-the-password').admin();
    await expect(admin.connect()).rejects.toMatchObject({ name: 'KafkaJSSASLAuthenticationError' });
    await admin.disconnect();
  });

  test('When the orchestrator\'s principal produces to the topics it owns, then the broker takes every message; the rules and the results stay closed to it', async () => {
    const orchestrator = await producerAs('orchestrator');
    const owned = Object.entries(TOPIC_RIGHTS)
      .filter(([, rights]) => rights.write.includes('orchestrator'))
      .map(([key]) => (topics as unknown as Record<string, unknown>)[key])
      .filter((topic): topic is string => typeof topic === 'string');
    expect(owned).toEqual(expect.arrayContaining([topics.paymentStatus, topics.gatewayHealth, topics.gatewayStats, topics.deadLetter]));
    for (const topic of [...owned, topics.gatewayRequests('alpha'), topics.gatewayRequests('beta')]) {
      expect({ topic, sent: await trySend(orchestrator, topic) }).toEqual({ topic, sent: 'ok' });
    }
    expect(await trySend(orchestrator, topics.rules)).toBe('TOPIC_AUTHORIZATION_FAILED');
    expect(await trySend(orchestrator, topics.gatewayResults)).toBe('TOPIC_AUTHORIZATION_FAILED');
  });

  test('When each service writes to each topic of the stack, then the broker allows exactly the writes of topics/acls.ts', async () => {
    const services: Service[] = ['orchestrator', 'gateway', 'backoffice'];
    const named = topics as unknown as Record<string, unknown>;
    const outcomes: Record<string, Record<string, string>> = {};
    const expected: Record<string, Record<string, string>> = {};
    for (const service of services) {
      const principal = service === 'gateway' ? DEFAULT_PRINCIPALS.gateway('alpha') : DEFAULT_PRINCIPALS[service];
      const producer = await producerAs(principal.replace(/^User:/, ''));
      outcomes[service] = {};
      expected[service] = {};
      for (const [key, rights] of Object.entries(TOPIC_RIGHTS)) {
        const topic = named[key];
        if (typeof topic !== 'string') continue;
        outcomes[service][key] = await trySend(producer, topic);
        expected[service][key] = rights.write.includes(service) ? 'ok' : 'TOPIC_AUTHORIZATION_FAILED';
      }
    }
    expect(outcomes).toEqual(expected);
    // Only the back office writes rules: the table itself says so.
    expect(TOPIC_RIGHTS.rules?.write).toEqual(['backoffice']);
  });
});
