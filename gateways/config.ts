import { z } from 'zod';
import { commonEnv, parseConfig, port, positiveInt } from '../runtime/config';
import { ids } from '../topics/envelope';
import { sandboxSettings } from './sandbox';

const gatewayEnv = z.object({
  ...commonEnv,
  GATEWAY_ID: ids.gatewayId,
  /** Port of the sandbox's chaos controls (GET/PUT /sandbox), health and metrics. */
  PORT: port(8090),
  SANDBOX_MODE: sandboxSettings.shape.mode,
  SANDBOX_LATENCY_MS: sandboxSettings.shape.latencyMs,
  SANDBOX_RATE: sandboxSettings.shape.rate,
  SHUTDOWN_GRACE_MS: positiveInt(15_000),
});

export type GatewayConfig = z.infer<typeof gatewayEnv>;

export const loadGatewayConfig = (env: Record<string, string | undefined>): GatewayConfig => parseConfig(gatewayEnv, env);
