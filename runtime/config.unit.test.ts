import { z } from 'zod';
import { commonEnv, ConfigError, kafkaDurabilityProblems, parseConfig } from './config';

/** The durability variables as commonEnv parses them. */
const settings = (brokers: string[], replicationFactor: number, minInsyncReplicas: number, developmentSetup = false) => ({
  KAFKA_BROKERS: brokers,
  KAFKA_REPLICATION_FACTOR: replicationFactor,
  KAFKA_MIN_INSYNC_REPLICAS: minInsyncReplicas,
  KAFKA_DEVELOPMENT_SETUP: developmentSetup,
});
const cluster = ['kafka-1.example:9092', 'kafka-2.example:9092', 'kafka-3.example:9092'];
/** The variables each problem names, in order. */
const named = (problems: string[]) => problems.map((problem) => problem.split(':')[0]);

describe('kafkaDurabilityProblems (runtime/config.ts)', () => {
  test('When brokers are not on this machine and the settings are RF 3 with min ISR 2, then nothing is refused', () => {
    expect(kafkaDurabilityProblems(settings(cluster, 3, 2))).toEqual([]);
    expect(kafkaDurabilityProblems(settings(['10.0.0.1:9092'], 5, 3))).toEqual([]);
  });

  test('When brokers are not on this machine and the replication factor is 1, then it is refused, naming both variables and the way out', () => {
    expect(named(kafkaDurabilityProblems(settings(cluster, 1, 1)))).toEqual(['KAFKA_MIN_INSYNC_REPLICAS', 'KAFKA_REPLICATION_FACTOR', 'KAFKA_DEVELOPMENT_SETUP']);
  });

  test('When brokers are not on this machine and min ISR is 1, then it is refused even with three copies', () => {
    const problems = kafkaDurabilityProblems(settings(cluster, 3, 1));
    expect(named(problems)).toEqual(['KAFKA_MIN_INSYNC_REPLICAS', 'KAFKA_DEVELOPMENT_SETUP']);
    expect(problems[0]).toContain('use 2');
  });

  test('When brokers are not on this machine and there is no spare copy (RF equal to min ISR), then it is refused: one broker down stops every write', () => {
    const problems = kafkaDurabilityProblems(settings(cluster, 2, 2));
    expect(named(problems)).toEqual(['KAFKA_REPLICATION_FACTOR', 'KAFKA_DEVELOPMENT_SETUP']);
    expect(problems[0]).toContain('use 3 or more');
  });

  test('When KAFKA_DEVELOPMENT_SETUP is true, then RF 1 and min ISR 1 on remote brokers are let through', () => {
    expect(kafkaDurabilityProblems(settings(cluster, 1, 1, true))).toEqual([]);
  });

  test('When every broker is on loopback, then RF 1 and min ISR 1 are let through: replication on one machine does not outlive it', () => {
    expect(kafkaDurabilityProblems(settings(['127.0.0.1:9092'], 1, 1))).toEqual([]);
    expect(kafkaDurabilityProblems(settings(['localhost:9092', '127.0.0.2:9093', '[::1]:9094', '::1'], 1, 1))).toEqual([]);
  });

  test('When one broker of the list is not on loopback, then the list is not a development set-up', () => {
    expect(named(kafkaDurabilityProblems(settings(['127.0.0.1:9092', 'kafka-2.example:9092'], 1, 1)))).toContain('KAFKA_MIN_INSYNC_REPLICAS');
    // A host that merely starts like a loopback address is not one.
    expect(kafkaDurabilityProblems(settings(['127.0.0.1.example:9092'], 1, 1))).not.toEqual([]);
    expect(kafkaDurabilityProblems(settings(['localhost.example:9092'], 1, 1))).not.toEqual([]);
  });

  test('When min ISR is above the replication factor, then it is refused always: on loopback and in a development set-up too', () => {
    for (const config of [settings(cluster, 2, 3), settings(['127.0.0.1:9092'], 1, 2), settings(cluster, 1, 2, true)]) {
      const problems = kafkaDurabilityProblems(config);
      expect(named(problems)).toEqual(['KAFKA_MIN_INSYNC_REPLICAS']);
      expect(problems[0]).toContain('no write could ever be acknowledged');
    }
  });

  test('When a schema has no durability variables, then there is nothing to check', () => {
    expect(kafkaDurabilityProblems({ PORT: 8080 })).toEqual([]);
    expect(kafkaDurabilityProblems(undefined)).toEqual([]);
  });
});

describe('parseConfig with the Kafka durability variables (runtime/config.ts)', () => {
  const schema = z.object({
    KAFKA_BROKERS: commonEnv.KAFKA_BROKERS,
    KAFKA_REPLICATION_FACTOR: commonEnv.KAFKA_REPLICATION_FACTOR,
    KAFKA_MIN_INSYNC_REPLICAS: commonEnv.KAFKA_MIN_INSYNC_REPLICAS,
    KAFKA_DEVELOPMENT_SETUP: commonEnv.KAFKA_DEVELOPMENT_SETUP,
  });
  const remote = 'kafka-1.example:9092, kafka-2.example:9092, kafka-3.example:9092';

  test('When the environment leaves them unset, then the local defaults (one copy on 127.0.0.1:9092) start', () => {
    expect(parseConfig(schema, {})).toEqual({ KAFKA_BROKERS: ['127.0.0.1:9092'], KAFKA_REPLICATION_FACTOR: 1, KAFKA_MIN_INSYNC_REPLICAS: 1, KAFKA_DEVELOPMENT_SETUP: false });
  });

  test('When remote brokers keep the one-copy defaults, then start-up stops with a ConfigError naming the variables', () => {
    expect(() => parseConfig(schema, { KAFKA_BROKERS: remote })).toThrow(ConfigError);
    expect(() => parseConfig(schema, { KAFKA_BROKERS: remote })).toThrow(/KAFKA_MIN_INSYNC_REPLICAS: 1 .*KAFKA_REPLICATION_FACTOR: 1 .*KAFKA_DEVELOPMENT_SETUP/);
  });

  test('When remote brokers have RF 3 and min ISR 2, or the development flag, then start-up goes on', () => {
    expect(parseConfig(schema, { KAFKA_BROKERS: remote, KAFKA_REPLICATION_FACTOR: '3', KAFKA_MIN_INSYNC_REPLICAS: '2' })).toMatchObject({ KAFKA_REPLICATION_FACTOR: 3, KAFKA_MIN_INSYNC_REPLICAS: 2 });
    expect(parseConfig(schema, { KAFKA_BROKERS: remote, KAFKA_DEVELOPMENT_SETUP: 'true' })).toMatchObject({ KAFKA_DEVELOPMENT_SETUP: true });
  });
});
