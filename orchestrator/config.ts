import { hostname } from 'node:os';
import { z } from 'zod';
import { commonEnv, parseConfig, port, positiveInt } from '../runtime/config';

const orchestratorEnv = z.object({
  ...commonEnv,
  PORT: port(8080),
  INSTANCE_ID: z.string().min(1).default(`${hostname()}-${process.pid}`),
  /** Seed routing rules (JSON array of gateway rules). */
  GATEWAY_RULES_FILE: z.string().default('config/gateways.json'),
  MAX_ATTEMPTS: positiveInt(3),
  /** How long an Idempotency-Key keeps answering with its payment. */
  IDEMPOTENCY_TTL_SECONDS: positiveInt(24 * 60 * 60),
  /** How often each instance looks for expired attempt deadlines. */
  TIMEOUT_POLL_MS: positiveInt(100),
  SHUTDOWN_GRACE_MS: positiveInt(15_000),
});

export type OrchestratorConfig = z.infer<typeof orchestratorEnv>;

export const loadOrchestratorConfig = (env: Record<string, string | undefined>): OrchestratorConfig =>
  parseConfig(orchestratorEnv, env);
