import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { DATASOURCE, renderDashboards } from '../grafana/dashboards/build';
import { ALERTS_TEST_YML } from '../grafana/prometheus/local';
import { committedAlertRules, committedDashboards } from './support/prometheus';
import { vectorSelectors } from './support/promql';

// What can be checked without Prometheus: the committed dashboards are what
// build.ts writes, every panel says what it shows and in which unit, and
// every alert has a severity, a summary, a runbook section and a unit test.
// test/prometheus.int.test.ts runs the queries themselves.
const ROOT = path.resolve(__dirname, '..');
const read = (relative: string) => readFileSync(path.join(ROOT, relative), 'utf8');

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes. */
const anchorOf = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
const runbookAnchors = new Set(
  read('docs/runbook.md')
    .split('\n')
    .filter((line) => /^#{1,6} /.test(line))
    .map((line) => anchorOf(line.replace(/^#+ /, ''))),
);

describe('Grafana dashboards', () => {
  test('When the dashboards are built from grafana/dashboards/build.ts, then the committed JSON is exactly that (run `npm run dashboards`)', () => {
    for (const [file, text] of renderDashboards()) expect({ file, text: read(`grafana/dashboards/${file}`) }).toEqual({ file, text });
  });

  test('When a panel is shown, then it says what it shows and in which unit, and queries the provisioned data source', () => {
    const provisioned = z.object({ datasources: z.array(z.object({ uid: z.string(), type: z.string() })) }).parse(parse(read('grafana/provisioning/datasources/prometheus.yml')));
    expect(provisioned.datasources.map(({ uid, type }) => ({ uid, type }))).toEqual([DATASOURCE]);
    const shownPanel = z.object({
      title: z.string(),
      description: z.string(),
      datasource: z.unknown(),
      fieldConfig: z.object({ defaults: z.object({ unit: z.string().optional() }) }),
      targets: z.array(z.object({ expr: z.string() })),
    });
    const shown = committedDashboards().flatMap(({ title, file }) =>
      (JSON.parse(read(`grafana/dashboards/${file}`)) as { panels: Array<{ type: string }> }).panels
        .filter((panel) => panel.type !== 'row')
        .map((panel) => ({ dashboard: title, ...shownPanel.parse(panel) })),
    );
    expect(shown.length).toBeGreaterThan(20);
    for (const { dashboard, title, description, datasource, fieldConfig, targets } of shown) {
      const where = `${dashboard} / ${title}`;
      expect({ where, unitSaid: /Unit: [^.]+\.$/.test(description), unit: typeof fieldConfig.defaults.unit }).toEqual({ where, unitSaid: true, unit: 'string' });
      expect({ where, datasource }).toEqual({ where, datasource: DATASOURCE });
      expect({ where, targets: targets.length > 0 && targets.every((target) => target.expr.length > 0) }).toEqual({ where, targets: true });
    }
    for (const { title, panels: list } of committedDashboards()) {
      const titles = list.map((panel) => panel.title);
      expect({ title, duplicates: titles.filter((name, index) => titles.indexOf(name) !== index) }).toEqual({ title, duplicates: [] });
    }
  });
});

describe('alert rules', () => {
  const rules = committedAlertRules();
  const tested = new Set(
    z
      .object({ tests: z.array(z.object({ alert_rule_test: z.array(z.object({ alertname: z.string() })) })) })
      .parse(parse(readFileSync(ALERTS_TEST_YML, 'utf8')))
      .tests.flatMap((unit) => unit.alert_rule_test.map((check) => check.alertname)),
  );

  test('When an alert reaches a person, then it has a severity, a summary, a description and a runbook link to a section of docs/runbook.md', () => {
    expect(rules.length).toBeGreaterThanOrEqual(10);
    for (const rule of rules) {
      const anchor = /^docs\/runbook\.md#([\w-]+)$/.exec(rule.annotations.runbook_url ?? '')?.[1];
      expect({
        alert: rule.alert,
        severity: ['page', 'ticket'].includes(rule.labels.severity ?? ''),
        summary: (rule.annotations.summary ?? '').length > 0,
        description: (rule.annotations.description ?? '').length > 0,
        runbookSection: anchor !== undefined && runbookAnchors.has(anchor),
      }).toEqual({ alert: rule.alert, severity: true, summary: true, description: true, runbookSection: true });
    }
    expect(new Set(rules.map((rule) => rule.alert)).size).toBe(rules.length);
  });

  test('When an alert is committed, then alerts.test.yml unit-tests it and the README names it', () => {
    const readme = read('README.md');
    for (const { alert } of rules) expect({ alert, tested: tested.has(alert), inReadme: readme.includes(`\`${alert}\``) }).toEqual({ alert, tested: true, inReadme: true });
  });
});

describe('reading PromQL selectors', () => {
  test('When an expression aggregates, nests functions, ranges and offsets, then only its vector selectors are read, with their matchers', () => {
    expect(
      vectorSelectors(
        'histogram_quantile(0.95, sum by (gateway, le) (rate(x_bucket{gateway=~"a|b",le!="{"}[5m]))) > 2.5 and on (gateway) max without (instance) (y offset 5m) unless z',
      ),
    ).toEqual([
      { metric: 'x_bucket', selector: 'x_bucket{gateway=~"a|b",le!="{"}' },
      { metric: 'y', selector: 'y' },
      { metric: 'z', selector: 'z' },
    ]);
    expect(vectorSelectors('up == 0')).toEqual([{ metric: 'up', selector: 'up' }]);
    expect(vectorSelectors('sum(increase(a_total[1h])) / 3e2')).toEqual([{ metric: 'a_total', selector: 'a_total' }]);
  });
});
