import { z } from 'zod';
import { commonEnv, parseConfig, port, positiveInt } from '../../runtime/config';

const optionalUrl = z.preprocess((value) => (value === '' ? undefined : value), z.string().url().optional());

const alertReceiverEnv = z.object({
  LOG_LEVEL: commonEnv.LOG_LEVEL,
  /** Port of the webhook Alertmanager posts to (POST /v1/alertmanager), and of /metrics. */
  PORT: port(9095),
  /**
   * Where each notification is forwarded (an SMS or e-mail gateway's
   * webhook, a chat incoming webhook). Unset: alerts are only logged.
   */
  FORWARD_WEBHOOK_URL: optionalUrl,
  /** Tries per notification before Alertmanager is answered 502 (and retries it itself). */
  FORWARD_ATTEMPTS: z.coerce.number().int().min(1).max(10).default(3),
  /** Wait before the second try; doubled before each further one. */
  FORWARD_RETRY_DELAY_MS: positiveInt(500),
  /** How long one forward may take. */
  FORWARD_TIMEOUT_MS: positiveInt(5_000),
  /**
   * Prefix that turns the rules' relative runbook links (`docs/runbook.md#…`)
   * into links a person can open, e.g. the repository's browse URL.
   */
  RUNBOOK_BASE_URL: optionalUrl,
  SHUTDOWN_GRACE_MS: positiveInt(15_000),
});

export type AlertReceiverConfig = z.infer<typeof alertReceiverEnv>;

/** Every variable this service reads (docker-compose.yml is checked against it). */
export const alertReceiverEnvKeys = Object.keys(alertReceiverEnv.shape);

export const loadAlertReceiverConfig = (env: Record<string, string | undefined>): AlertReceiverConfig => parseConfig(alertReceiverEnv, env);
