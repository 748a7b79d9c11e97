import { z } from 'zod';
import { commonEnv, parseConfig } from '../runtime/config';

const seedEnv = z.object({
  ...commonEnv,
  GATEWAY_RULES_FILE: z.string().default('config/gateways.json'),
});

export const loadSeedConfig = (env: Record<string, string | undefined>) => parseConfig(seedEnv, env);
