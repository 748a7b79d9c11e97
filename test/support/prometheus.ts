import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { DASHBOARDS, dashboardJson } from '../../grafana/dashboards/build';
import { ALERTS_YML } from '../../grafana/prometheus/local';

/** One query of a dashboard panel, named for error messages. */
export interface PanelQuery {
  where: string;
  expr: string;
}

const panel = z.object({ type: z.string(), title: z.string(), targets: z.array(z.object({ expr: z.string() })).optional() });
const dashboard = z.object({ title: z.string(), panels: z.array(panel) });

/** The dashboards as committed in grafana/dashboards/*.json. */
export function committedDashboards(): Array<z.infer<typeof dashboard> & { file: string }> {
  return DASHBOARDS.map((spec) => ({
    file: spec.file,
    ...dashboard.parse(JSON.parse(readFileSync(path.resolve(__dirname, '../../grafana/dashboards', spec.file), 'utf8'))),
  }));
}

/**
 * Every panel query, with Grafana's variables replaced as Grafana would for
 * "All": `$gateway` by its all-value `.+`, `$__rate_interval` by `rateWindow`
 * (four scrape intervals).
 */
export function panelQueries(rateWindow: string): PanelQuery[] {
  return committedDashboards().flatMap(({ title, panels }) =>
    panels.flatMap((candidate) =>
      (candidate.targets ?? []).map((target, index) => ({
        where: `${title} / ${candidate.title} #${index + 1}`,
        expr: target.expr.replaceAll('$__rate_interval', rateWindow).replaceAll('$gateway', '.+'),
      })),
    ),
  );
}

/** The template variables' queries, e.g. `label_values(gateway_available, gateway)`. */
export const variableQueries = (): string[] =>
  DASHBOARDS.flatMap((spec) => dashboardJson(spec).templating.list.map((variable) => variable.definition));

const alertRule = z.object({
  alert: z.string(),
  expr: z.string(),
  for: z.string().optional(),
  labels: z.record(z.string(), z.string()),
  annotations: z.record(z.string(), z.string()),
});
const rulesFile = z.object({ groups: z.array(z.object({ name: z.string(), rules: z.array(alertRule) })) });
export type AlertRule = z.infer<typeof alertRule>;

export function committedAlertRules(): AlertRule[] {
  return rulesFile.parse(parse(readFileSync(ALERTS_YML, 'utf8'))).groups.flatMap((group) => group.rules);
}

const apiAnswer = z.object({ status: z.string(), data: z.unknown().optional(), error: z.string().optional() });
const vectorResult = z.object({ resultType: z.string(), result: z.array(z.object({ metric: z.record(z.string(), z.string()), value: z.tuple([z.number(), z.string()]) })) });
const matrixResult = z.object({ resultType: z.string(), result: z.array(z.object({ metric: z.record(z.string(), z.string()), values: z.array(z.tuple([z.number(), z.string()])) })) });
const alertsResult = z.object({ alerts: z.array(z.object({ labels: z.record(z.string(), z.string()), state: z.string() })) });

/** The Prometheus HTTP API of one server. A query that does not parse rejects with Prometheus' own message. */
export function prometheusApi(url: string) {
  const get = async (route: string, params: Record<string, string | string[]> = {}) => {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) for (const one of [value].flat()) search.append(name, one);
    const response = await fetch(`${url}/api/v1/${route}?${search}`);
    const answer = apiAnswer.parse(await response.json());
    if (answer.status !== 'success') throw new Error(`${route} ${JSON.stringify(params)}: ${answer.error ?? response.status}`);
    return answer.data;
  };
  return {
    instant: async (query: string) => vectorResult.parse(await get('query', { query })).result,
    range: async (query: string, startSeconds: number, endSeconds: number, stepSeconds = 1) =>
      matrixResult.parse(await get('query_range', { query, start: String(startSeconds), end: String(endSeconds), step: String(stepSeconds) })).result,
    metricNames: async () => z.array(z.string()).parse(await get('label/__name__/values')),
    labelValues: async (label: string, match: string) => z.array(z.string()).parse(await get(`label/${label}/values`, { 'match[]': match })),
    alerts: async () => alertsResult.parse(await get('alerts')).alerts,
  };
}
