import { z } from 'zod';

/**
 * The body Alertmanager posts to a webhook receiver (payload version 4).
 * Fields this service does not use are kept optional, and unknown ones are
 * dropped, so a newer Alertmanager still gets through.
 */
const labels = z.record(z.string(), z.string());
export const alertmanagerAlert = z.object({
  status: z.enum(['firing', 'resolved']),
  labels: labels.refine((value) => typeof value.alertname === 'string' && value.alertname !== '', { error: 'alertname is required' }),
  annotations: labels.default({}),
  startsAt: z.string(),
  endsAt: z.string().optional(),
  generatorURL: z.string().optional(),
  fingerprint: z.string().optional(),
});
export const alertmanagerWebhook = z.object({
  version: z.string().optional(),
  groupKey: z.string().optional(),
  truncatedAlerts: z.number().int().min(0).default(0),
  status: z.enum(['firing', 'resolved']),
  receiver: z.string().optional(),
  groupLabels: labels.default({}),
  commonLabels: labels.default({}),
  commonAnnotations: labels.default({}),
  externalURL: z.string().optional(),
  alerts: z.array(alertmanagerAlert).min(1),
});
export type AlertmanagerWebhook = z.infer<typeof alertmanagerWebhook>;

/** One alert as it is logged and forwarded: what fires, how badly, what it means and where the runbook is. */
export interface AlertNote {
  status: 'firing' | 'resolved';
  alertname: string;
  severity: string;
  summary: string;
  description?: string;
  runbook?: string;
  /** The alert's other labels (gateway, region, group…), which say what it is about. */
  labels: Record<string, string>;
  startsAt: string;
  endsAt?: string;
  fingerprint?: string;
}

/** Labels every alert carries that say nothing about what it is about. */
const PLUMBING_LABELS = new Set(['alertname', 'severity', 'service', 'job', 'instance', 'prometheus']);

/** A relative runbook link (`docs/runbook.md#…`) made absolute with the base, when one is configured. */
export function runbookLink(link: string | undefined, base: string | undefined): string | undefined {
  if (!link) return undefined;
  if (/^[a-z][a-z0-9+.-]*:/i.test(link) || !base) return link;
  return `${base.replace(/\/+$/, '')}/${link.replace(/^\/+/, '')}`;
}

export function describeAlerts(payload: AlertmanagerWebhook, runbookBase?: string): AlertNote[] {
  return payload.alerts.map((alert) => {
    const { alertname = '', severity = 'none', ...rest } = alert.labels;
    const about = Object.fromEntries(Object.entries(rest).filter(([name]) => !PLUMBING_LABELS.has(name)));
    const runbook = runbookLink(alert.annotations.runbook_url, runbookBase);
    return {
      status: alert.status,
      alertname,
      severity,
      summary: alert.annotations.summary ?? alertname,
      ...(alert.annotations.description ? { description: alert.annotations.description } : {}),
      ...(runbook ? { runbook } : {}),
      labels: about,
      startsAt: alert.startsAt,
      // Alertmanager sends the zero time for an alert that has not ended.
      ...(alert.endsAt && !alert.endsAt.startsWith('0001-') ? { endsAt: alert.endsAt } : {}),
      ...(alert.fingerprint ? { fingerprint: alert.fingerprint } : {}),
    };
  });
}

/** A short text a person reads on a phone: one line per alert, firing ones first. */
export function notificationText(notes: readonly AlertNote[], truncated = 0): string {
  const ordered = [...notes].sort((a, b) => Number(a.status === 'resolved') - Number(b.status === 'resolved'));
  const lines = ordered.map((note) => {
    const about = Object.entries(note.labels)
      .map(([name, value]) => `${name}=${value}`)
      .join(' ');
    const head = `[${note.status.toUpperCase()}] ${note.alertname}${about ? ` (${about})` : ''} ${note.severity}`;
    return `${head}: ${note.summary}${note.runbook ? ` Runbook: ${note.runbook}` : ''}`;
  });
  if (truncated > 0) lines.push(`…and ${truncated} more alerts (see Alertmanager)`);
  return lines.join('\n');
}

/** What the receiver posts to the configured webhook: a `text` for chat and SMS bridges, and the alerts as data. */
export function forwardBody(payload: AlertmanagerWebhook, notes: readonly AlertNote[]) {
  return { text: notificationText(notes, payload.truncatedAlerts), status: payload.status, alerts: notes };
}

export type ForwardResult = { ok: true; tries: number } | { ok: false; tries: number; error: string };

export interface ForwardOptions {
  url: string;
  body: unknown;
  attempts: number;
  retryDelayMs: number;
  timeoutMs: number;
  fetch: typeof fetch;
  sleep: (ms: number) => Promise<void>;
}

/**
 * POSTs the body as JSON, retrying a network error, a time-out, 429 and 5xx
 * with a doubling delay; another 4xx is the webhook refusing this body, and
 * sending it again would not help.
 */
export async function forwardWithRetry(options: ForwardOptions): Promise<ForwardResult> {
  let error = 'not tried';
  for (let tries = 1; tries <= options.attempts; tries += 1) {
    if (tries > 1) await options.sleep(options.retryDelayMs * 2 ** (tries - 2));
    try {
      const response = await options.fetch(options.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(options.body),
        signal: AbortSignal.timeout(options.timeoutMs),
      });
      await response.arrayBuffer().catch(() => undefined);
      if (response.ok) return { ok: true, tries };
      error = `HTTP ${response.status}`;
      if (response.status < 500 && response.status !== 429) return { ok: false, tries, error };
    } catch (failure) {
      error = failure instanceof Error ? failure.message : String(failure);
    }
  }
  return { ok: false, tries: options.attempts, error };
}
