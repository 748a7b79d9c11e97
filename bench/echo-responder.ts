// The replying side of the echo baseline, run as its own process (as a
// gateway is): raw kafkajs, no schema, no Redis, no logging per message.
// Each request is produced back, key and bytes unchanged, on the reply
// topic, with the same settings the orchestrator's results consumer and
// publisher use (six partitions handled at once, acks from all replicas).
import { Kafka, logLevel } from 'kafkajs';
import { z } from 'zod';
import { commonEnv, parseConfig, port } from '../runtime/config';
import { createHttpApp, listen } from '../runtime/http';
import { exitOnSignals, Lifecycle, runMain } from '../runtime/lifecycle';
import { createLogger } from '../runtime/logger';
import { createMetricsRegistry } from '../runtime/metrics';
import { ECHO_PARTITIONS_CONCURRENTLY } from './echo';

const echoEnv = z.object({
  KAFKA_BROKERS: commonEnv.KAFKA_BROKERS,
  LOG_LEVEL: commonEnv.LOG_LEVEL,
  PORT: port(0),
  ECHO_REQUESTS_TOPIC: z.string().min(1),
  ECHO_REPLIES_TOPIC: z.string().min(1),
});

runMain(async () => {
  const config = parseConfig(echoEnv, process.env);
  const logger = createLogger('echo-responder', config.LOG_LEVEL);
  const lifecycle = new Lifecycle(logger);
  const kafka = new Kafka({ clientId: 'bench-echo-responder', brokers: config.KAFKA_BROKERS, logLevel: logLevel.ERROR });
  const producer = kafka.producer();
  await producer.connect();
  lifecycle.add('producer', () => producer.disconnect());
  const consumer = kafka.consumer({ groupId: `${config.ECHO_REQUESTS_TOPIC}.responder` });
  let joined = false;
  consumer.on(consumer.events.GROUP_JOIN, () => (joined = true));
  await consumer.connect();
  lifecycle.add('consumer', () => consumer.disconnect());
  await consumer.subscribe({ topic: config.ECHO_REQUESTS_TOPIC, fromBeginning: true });
  await consumer.run({
    partitionsConsumedConcurrently: ECHO_PARTITIONS_CONCURRENTLY,
    eachMessage: async ({ message }) => {
      await producer.send({ topic: config.ECHO_REPLIES_TOPIC, acks: -1, messages: [{ key: message.key, value: message.value }] });
    },
  });
  const app = createHttpApp({ logger, registry: createMetricsRegistry('echo-responder'), isReady: () => joined, isDraining: () => lifecycle.isStopping }, () => undefined);
  const server = await listen(app, config.PORT);
  lifecycle.add('http server', server.close);
  exitOnSignals({ stop: () => lifecycle.stop() }, logger, 10_000);
});
