import { alertmanagerWebhook, describeAlerts, forwardBody, forwardWithRetry, notificationText, runbookLink } from './alerts';

const firing = {
  version: '4',
  groupKey: '{}:{alertname="GatewayBreakerOpen"}',
  truncatedAlerts: 0,
  status: 'firing',
  receiver: 'ops-webhook',
  groupLabels: { alertname: 'GatewayBreakerOpen' },
  commonLabels: { alertname: 'GatewayBreakerOpen', severity: 'page' },
  commonAnnotations: {},
  externalURL: 'http://alertmanager:9093',
  alerts: [
    {
      status: 'firing',
      labels: { alertname: 'GatewayBreakerOpen', severity: 'page', gateway: 'alpha', service: 'orchestrator', job: 'orchestrator', instance: 'orchestrator:8080' },
      annotations: { summary: 'Gateway alpha: circuit breaker open', runbook_url: 'docs/runbook.md#gatewaybreakeropen' },
      startsAt: '2026-11-22T09:00:00Z',
      endsAt: '0001-01-01T00:00:00Z',
      generatorURL: 'http://prometheus:9090/graph',
      fingerprint: 'c0ffee',
      extra: 'ignored',
    },
    {
      status: 'resolved',
      labels: { alertname: 'DeadLettersAppearing', severity: 'ticket', topic: 'gateway.results', reason: 'schema' },
      annotations: { summary: 'Messages dead-lettered' },
      startsAt: '2026-11-22T08:00:00Z',
      endsAt: '2026-11-22T08:30:00Z',
    },
  ],
};

const fakeFetch = (statuses: Array<number | Error>) => {
  const calls: string[] = [];
  const fetchFake = (async (url: string | URL | Request) => {
    calls.push(String(url));
    const next = statuses.shift() ?? 200;
    if (next instanceof Error) throw next;
    return new Response('{}', { status: next });
  }) as typeof fetch;
  return { fetch: fetchFake, calls };
};
const forward = (fetchFake: typeof fetch, sleeps: number[]) =>
  forwardWithRetry({ url: 'http://hook.test/x', body: {}, attempts: 3, retryDelayMs: 100, timeoutMs: 1_000, fetch: fetchFake, sleep: async (ms) => void sleeps.push(ms) });

describe('Alertmanager webhook payloads', () => {
  test('When Alertmanager posts a group, then each alert is described with what it is about, its summary and an absolute runbook link', () => {
    const notes = describeAlerts(alertmanagerWebhook.parse(firing), 'https://git.example/pgo/blob/main/');
    expect(notes).toEqual([
      {
        status: 'firing',
        alertname: 'GatewayBreakerOpen',
        severity: 'page',
        summary: 'Gateway alpha: circuit breaker open',
        runbook: 'https://git.example/pgo/blob/main/docs/runbook.md#gatewaybreakeropen',
        labels: { gateway: 'alpha' },
        startsAt: '2026-11-22T09:00:00Z',
        fingerprint: 'c0ffee',
      },
      {
        status: 'resolved',
        alertname: 'DeadLettersAppearing',
        severity: 'ticket',
        summary: 'Messages dead-lettered',
        labels: { topic: 'gateway.results', reason: 'schema' },
        startsAt: '2026-11-22T08:00:00Z',
        endsAt: '2026-11-22T08:30:00Z',
      },
    ]);
  });

  test('When a payload has no alerts or an alert has no name, then it is refused naming the field', () => {
    expect(alertmanagerWebhook.safeParse({ ...firing, alerts: [] }).success).toBe(false);
    const nameless = alertmanagerWebhook.safeParse({ ...firing, alerts: [{ ...firing.alerts[0], labels: { severity: 'page' } }] });
    expect(nameless.success).toBe(false);
    expect(nameless.error?.issues[0]?.path).toEqual(['alerts', 0, 'labels']);
  });

  test('When no runbook base is configured, then links stay as the rules wrote them; absolute links are never changed', () => {
    expect(runbookLink('docs/runbook.md#x', undefined)).toBe('docs/runbook.md#x');
    expect(runbookLink('https://wiki/x', 'https://base')).toBe('https://wiki/x');
    expect(runbookLink(undefined, 'https://base')).toBeUndefined();
  });

  test('When a notification is forwarded, then its text has one line per alert, firing first, with the runbook', () => {
    const payload = alertmanagerWebhook.parse({ ...firing, alerts: [...firing.alerts].reverse(), truncatedAlerts: 2 });
    const body = forwardBody(payload, describeAlerts(payload));
    expect(body.text.split('\n')).toEqual([
      '[FIRING] GatewayBreakerOpen (gateway=alpha) page: Gateway alpha: circuit breaker open Runbook: docs/runbook.md#gatewaybreakeropen',
      '[RESOLVED] DeadLettersAppearing (topic=gateway.results reason=schema) ticket: Messages dead-lettered',
      '…and 2 more alerts (see Alertmanager)',
    ]);
    expect(body.status).toBe('firing');
    expect(body.alerts).toHaveLength(2);
    expect(notificationText([])).toBe('');
  });
});

describe('forwarding with retry', () => {
  test('When the webhook fails with 503 then a network error, then the third try delivers it after doubling waits', async () => {
    const sleeps: number[] = [];
    const { fetch: fetchFake, calls } = fakeFetch([503, new Error('ECONNRESET'), 200]);
    expect(await forward(fetchFake, sleeps)).toEqual({ ok: true, tries: 3 });
    expect(calls).toHaveLength(3);
    expect(sleeps).toEqual([100, 200]);
  });

  test('When the webhook refuses the body with a 400, then it is not sent again', async () => {
    const { fetch: fetchFake, calls } = fakeFetch([400]);
    expect(await forward(fetchFake, [])).toEqual({ ok: false, tries: 1, error: 'HTTP 400' });
    expect(calls).toHaveLength(1);
  });

  test('When every try fails, then the result says so with the last error', async () => {
    const { fetch: fetchFake } = fakeFetch([500, 429, 502]);
    expect(await forward(fetchFake, [])).toEqual({ ok: false, tries: 3, error: 'HTTP 502' });
  });
});
