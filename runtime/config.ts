import { z } from 'zod';
import { parseRedisTarget } from './redis';

/** Raised when an environment variable does not parse; the message names the variable. */
export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`invalid configuration: ${issues.join('; ')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Parses an environment-shaped record against a zod object schema whose keys
 * are the variable names. This is the only place that turns strings from the
 * environment into typed config, so a bad value fails start-up once, naming
 * the variable.
 */
export function parseConfig<S extends z.ZodType>(
  schema: S,
  env: Record<string, string | undefined>,
): z.infer<S> {
  const result = schema.safeParse(env);
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`),
    );
  }
  const unsafe = [...kafkaDurabilityProblems(result.data), ...kafkaAuthProblems(result.data)];
  if (unsafe.length > 0) throw new ConfigError(unsafe);
  return result.data;
}

/** Whether a host is this machine: a broker there cannot outlive the machine, whatever its settings. */
const isLoopback = (broker: string) => /^(127\.\d+\.\d+\.\d+|localhost|\[?::1\]?)(:\d+)?$/.test(broker);

/**
 * The start-up check every service gets through {@link parseConfig} when its
 * schema has the Kafka durability variables of {@link commonEnv}: settings
 * that can lose an acknowledged message (fewer than two in-sync copies, or no
 * spare copy to lose a broker and keep writing) are refused unless this is a
 * development set-up: KAFKA_DEVELOPMENT_SETUP=true, or every broker on this
 * machine (a loopback address), where replication cannot protect anything
 * from the loss of the machine. Settings Kafka itself would refuse (more
 * in-sync replicas than copies) are refused always.
 */
export function kafkaDurabilityProblems(config: unknown): string[] {
  const { KAFKA_BROKERS: brokers, KAFKA_REPLICATION_FACTOR: replicas, KAFKA_MIN_INSYNC_REPLICAS: inSync, KAFKA_DEVELOPMENT_SETUP: development } = (config ?? {}) as Record<string, unknown>;
  if (typeof replicas !== 'number' || typeof inSync !== 'number') return [];
  if (inSync > replicas) return [`KAFKA_MIN_INSYNC_REPLICAS: ${inSync} is more than KAFKA_REPLICATION_FACTOR ${replicas}; no write could ever be acknowledged`];
  const localOnly = Array.isArray(brokers) && brokers.every((broker) => typeof broker === 'string' && isLoopback(broker));
  if (development === true || localOnly) return [];
  const problems: string[] = [];
  if (inSync < 2) problems.push(`KAFKA_MIN_INSYNC_REPLICAS: ${inSync} lets the loss of one broker lose acknowledged messages; use 2 (with KAFKA_REPLICATION_FACTOR 3)`);
  if (replicas <= inSync) problems.push(`KAFKA_REPLICATION_FACTOR: ${replicas} with KAFKA_MIN_INSYNC_REPLICAS ${inSync} stops every write when one broker is down; use ${inSync + 1} or more`);
  if (problems.length > 0) problems.push('KAFKA_DEVELOPMENT_SETUP: set it to true only for a development set-up, where losing messages is acceptable');
  return problems;
}

/**
 * The start-up check of the broker credentials ({@link commonEnv}'s KAFKA_SASL_*): a mechanism needs a user name
 * and a password, and a user name or password without a mechanism would silently connect without them.
 */
export function kafkaAuthProblems(config: unknown): string[] {
  const { KAFKA_SASL_MECHANISM: mechanism, KAFKA_SASL_USERNAME: username, KAFKA_SASL_PASSWORD: password } = (config ?? {}) as Record<string, unknown>;
  if (mechanism === undefined) {
    return username !== undefined || password !== undefined ? ['KAFKA_SASL_MECHANISM: set it (SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN) to use KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD'] : [];
  }
  const problems: string[] = [];
  if (username === undefined) problems.push(`KAFKA_SASL_USERNAME: required with KAFKA_SASL_MECHANISM ${String(mechanism)}`);
  if (password === undefined) problems.push(`KAFKA_SASL_PASSWORD: required with KAFKA_SASL_MECHANISM ${String(mechanism)}`);
  return problems;
}

/** An optional variable for which an empty value (`NAME=`, compose's `${NAME:-}`) means unset. */
const unsetWhenEmpty = <T extends z.ZodType>(schema: T) => z.preprocess((value) => (value === '' ? undefined : value), schema.optional());

const flag = z.enum(['true', 'false']).default('false').transform((value) => value === 'true');

/** Common variables every service understands. */
export const commonEnv = {
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  KAFKA_BROKERS: z
    .string()
    .min(1)
    .default('127.0.0.1:9092')
    .transform((value) => value.split(',').map((broker) => broker.trim())),
  /**
   * One server (`redis://host:port`) or a primary found through Sentinel
   * (`redis-sentinel://host:port,host:port,host:port/mymaster`); either may add
   * `?waitReplicas=1&waitTimeoutMs=1000` so every write is on a replica before
   * it is acknowledged (runtime/redis.ts, docs/cluster.md).
   */
  REDIS_URL: z
    .string()
    .default('redis://127.0.0.1:6379')
    .superRefine((value, context) => {
      try {
        parseRedisTarget(value);
      } catch (error) {
        context.addIssue({ code: 'custom', message: error instanceof Error ? error.message : String(error) });
      }
    }),
  /** Prefix of every Redis key, so several stacks (or test runs) share one Redis. */
  REDIS_KEY_PREFIX: z.string().default('pgo:'),
  /** Prefix of every topic name, so several stacks (or test files) share one broker. */
  TOPIC_PREFIX: z.string().regex(/^[a-zA-Z0-9._-]*$/).default(''),
  /** Copies of every partition of the topics the stack creates: 3 on a cluster, 1 on a single development broker. */
  KAFKA_REPLICATION_FACTOR: z.coerce.number().int().min(1).default(1),
  /** Copies that must have a message before it is acknowledged (acks=all): 2 on a cluster, 1 on a single development broker. */
  KAFKA_MIN_INSYNC_REPLICAS: z.coerce.number().int().min(1).default(1),
  /** Says that settings able to lose acknowledged messages are acceptable here (`true`): a development set-up. */
  KAFKA_DEVELOPMENT_SETUP: flag,
  /**
   * How this service authenticates to the brokers (SASL): `SCRAM-SHA-512`, `SCRAM-SHA-256` or `PLAIN` (case does not
   * matter). Unset: no authentication (a plaintext broker). Each service has a principal of its own, with the broker
   * rights of topics/acls.ts.
   */
  KAFKA_SASL_MECHANISM: unsetWhenEmpty(
    z
      .string()
      .transform((value) => value.toLowerCase())
      .pipe(z.enum(['scram-sha-512', 'scram-sha-256', 'plain'], { message: 'SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN' })),
  ),
  /** This service's principal (user name) on the brokers; required with KAFKA_SASL_MECHANISM. */
  KAFKA_SASL_USERNAME: unsetWhenEmpty(z.string()),
  /** Its password; required with KAFKA_SASL_MECHANISM. A secret: from the environment or a secret store, never a file in the repository. */
  KAFKA_SASL_PASSWORD: unsetWhenEmpty(z.string()),
  /** `true`: TLS to the brokers (SASL_SSL on managed clusters), with the system's trusted CAs. */
  KAFKA_SSL: flag,
  /**
   * Partitions of the payment-keyed topics (gateway requests and results, payment status): the most orchestrator
   * instances that can share the result work. Fixed once the topics exist (docs/cluster.md#partitions).
   */
  PAYMENT_PARTITIONS: z.coerce.number().int().min(1).max(1000).default(6),
};

export const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);
export const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);
