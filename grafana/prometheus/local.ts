// Prometheus and Alertmanager without Docker: the committed configurations
// (prometheus.yml, alertmanager.yml) with their compose addresses replaced by
// local ones, and the Debian binaries run as child processes. Used by
// `npm start` (scripts/stack.ts) and test/prometheus.int.test.ts, so both
// run what docker-compose.yml runs. `npm run ops-tools` installs the binaries.
// Each tool's pid is handed to the reaper (scripts/reaper.ts): it stops with
// the process that started it, even one killed outright.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { parse, stringify } from 'yaml';
import { z } from 'zod';
import { reapOnExit } from '../../scripts/reaper';

const GRAFANA = path.resolve(__dirname, '..');
export const PROMETHEUS_YML = path.join(GRAFANA, 'prometheus', 'prometheus.yml');
export const ALERTS_YML = path.join(GRAFANA, 'prometheus', 'alerts.yml');
export const ALERTS_TEST_YML = path.join(GRAFANA, 'prometheus', 'alerts.test.yml');
export const ALERTMANAGER_YML = path.join(GRAFANA, 'alertmanager', 'alertmanager.yml');
export const PROMETHEUS_BIN = '/usr/bin/prometheus';
export const PROMTOOL_BIN = '/usr/bin/promtool';
export const ALERTMANAGER_BIN = '/usr/bin/prometheus-alertmanager';
/** The Debian packages that bring the binaries above. */
export const OPS_PACKAGES = ['prometheus', 'prometheus-alertmanager'] as const;

export interface Target {
  address: string;
  /** `service`, and `gateway` for a gateway: the labels the committed file gives each target. */
  labels: Record<string, string>;
}

const scrapeConfig = z.looseObject({ job_name: z.string(), static_configs: z.array(z.looseObject({ targets: z.array(z.string()) })) });
const prometheusYml = z.looseObject({
  global: z.looseObject({}),
  rule_files: z.array(z.string()),
  alerting: z.looseObject({}),
  scrape_configs: z.array(scrapeConfig),
});

export interface LocalPrometheusOptions {
  /** The targets of each job of the committed file, by job name; a job left out is dropped. */
  targets: Record<string, Target[]>;
  /** host:port of the Alertmanagers to send alerts to (none: alerts stay in Prometheus). */
  alertmanagers: string[];
  /** Scrape and rule evaluation interval; the committed file's 15 s if not given. */
  intervalSeconds?: number;
}

/** The committed prometheus.yml, with local targets and an absolute path to alerts.yml. */
export function localPrometheusConfig(options: LocalPrometheusOptions): string {
  const config = prometheusYml.parse(parse(readFileSync(PROMETHEUS_YML, 'utf8')));
  const unknown = Object.keys(options.targets).filter((job) => !config.scrape_configs.some((scrape) => scrape.job_name === job));
  if (unknown.length > 0) throw new Error(`prometheus.yml has no job ${unknown.join(', ')}`);
  if (options.intervalSeconds !== undefined) {
    const interval = `${options.intervalSeconds}s`;
    Object.assign(config.global, { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval });
  }
  config.rule_files = config.rule_files.map((file) => path.resolve(path.dirname(PROMETHEUS_YML), file));
  config.alerting = { alertmanagers: options.alertmanagers.length > 0 ? [{ static_configs: [{ targets: options.alertmanagers }] }] : [] };
  config.scrape_configs = config.scrape_configs.flatMap((scrape) => {
    const targets = options.targets[scrape.job_name];
    if (!targets || targets.length === 0) return [];
    return [{ ...scrape, static_configs: targets.map((target) => ({ targets: [target.address], labels: target.labels })) }];
  });
  return stringify(config);
}

const alertmanagerYml = z.looseObject({
  route: z.looseObject({}),
  receivers: z.array(z.looseObject({ name: z.string(), webhook_configs: z.array(z.looseObject({ url: z.string() })).optional() })),
});

/**
 * The committed alertmanager.yml with every webhook pointed at `webhookUrl`
 * (the local alert receiver); `groupWait` shortens the wait before a new
 * group's first notification (a test cannot wait 10 s per alert).
 */
export function localAlertmanagerConfig(webhookUrl: string, groupWait?: string): string {
  const config = alertmanagerYml.parse(parse(readFileSync(ALERTMANAGER_YML, 'utf8')));
  for (const receiver of config.receivers) for (const webhook of receiver.webhook_configs ?? []) webhook.url = webhookUrl;
  if (groupWait !== undefined) config.route.group_wait = groupWait;
  return stringify(config);
}

export interface RunningTool {
  url: string;
  child: ChildProcess;
  output: () => string;
  stop: () => Promise<void>;
}

/** Runs Prometheus on 127.0.0.1:port with the configuration text, until stop(). */
export function startPrometheus(options: { config: string; dir: string; port: number; retention?: string }): Promise<RunningTool> {
  const configFile = path.join(options.dir, 'prometheus.yml');
  writeFileSync(configFile, options.config);
  return startTool(PROMETHEUS_BIN, options.port, [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${path.join(options.dir, 'data')}`,
    `--storage.tsdb.retention.time=${options.retention ?? '1d'}`,
    `--web.listen-address=127.0.0.1:${options.port}`,
    '--log.level=warn',
  ]);
}

/** Runs Alertmanager on 127.0.0.1:port with the configuration text (no cluster), until stop(). */
export function startAlertmanager(options: { config: string; dir: string; port: number }): Promise<RunningTool> {
  const configFile = path.join(options.dir, 'alertmanager.yml');
  writeFileSync(configFile, options.config);
  return startTool(ALERTMANAGER_BIN, options.port, [
    `--config.file=${configFile}`,
    `--storage.path=${path.join(options.dir, 'alertmanager-data')}`,
    `--web.listen-address=127.0.0.1:${options.port}`,
    '--cluster.listen-address=',
    '--log.level=warn',
  ]);
}

export const isInstalled = (binary: string) => existsSync(binary);

const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;

async function startTool(binary: string, port: number, args: string[]): Promise<RunningTool> {
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const reaping = await reapOnExit(path.basename(binary), child.pid === undefined ? [] : [child.pid], { graceMs: STOP_TIMEOUT_MS });
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      if ((await Promise.race([exited.then(() => 'exited'), delay(STOP_TIMEOUT_MS, 'timeout', { ref: false })])) === 'timeout') {
        child.kill('SIGKILL');
        await exited;
      }
    }
    await reaping.release();
  };
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`${binary} exited during start-up:\n${output}`);
    }
    const ready = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1_000) }).then(
      (response) => response.ok,
      () => false,
    );
    if (ready) return { url, child, output: () => output, stop };
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${binary} not ready on ${url} after ${READY_TIMEOUT_MS} ms:\n${output}`);
    }
    await delay(100);
  }
}
