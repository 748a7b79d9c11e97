import { z } from 'zod';
import { commonEnv, parseConfig, port, positiveInt } from '../runtime/config';
import { ids } from '../topics/envelope';
import { sandboxSettings } from './sandbox';

/**
 * An environment variable read as a sandbox number: the same bounds and
 * default as the HTTP controls, with the string turned into a number first
 * (unset or empty takes the default; "abc" fails, naming the variable).
 */
const fromEnv = <S extends z.ZodType>(schema: S) =>
  z.preprocess((value) => (value === undefined || value === '' ? undefined : Number(value)), schema);

const gatewayEnv = z.object({
  ...commonEnv,
  GATEWAY_ID: ids.gatewayId,
  /** Port of the sandbox's chaos controls (GET/PUT /sandbox), health and metrics. */
  PORT: port(8090),
  SANDBOX_MODE: sandboxSettings.shape.mode,
  SANDBOX_LATENCY_MS: fromEnv(sandboxSettings.shape.latencyMs),
  SANDBOX_RATE: fromEnv(sandboxSettings.shape.rate),
  SANDBOX_PERIOD_MS: fromEnv(sandboxSettings.shape.periodMs),
  SANDBOX_LATE_MS: fromEnv(sandboxSettings.shape.lateMs),
  /** Attempts the sandbox remembers, to answer cancel and compensate commands truthfully. */
  SANDBOX_ATTEMPT_MEMORY: positiveInt(100_000),
  /**
   * On shutdown, how long attempts still waiting (slow, late) may take to be
   * answered before they are abandoned unanswered; the orchestrator's
   * timeouts cover them.
   */
  DRAIN_GRACE_MS: z.coerce.number().int().min(0).max(60_000).default(1_000),
  SHUTDOWN_GRACE_MS: positiveInt(15_000),
});

export type GatewayConfig = z.infer<typeof gatewayEnv>;

/** Every variable this service reads (docker-compose.yml is checked against it). */
export const gatewayEnvKeys = Object.keys(gatewayEnv.shape);

export const loadGatewayConfig = (env: Record<string, string | undefined>): GatewayConfig => parseConfig(gatewayEnv, env);
