import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { backofficeEnvKeys, loadBackofficeConfig } from '../backoffice/config';
import { alertReceiverEnvKeys, loadAlertReceiverConfig } from '../grafana/alert-receiver/config';
import { WEBHOOK_PATH } from '../grafana/alert-receiver/main';
import { gatewayEnvKeys, loadGatewayConfig } from '../gateways/config';
import { loadOrchestratorConfig, orchestratorEnvKeys } from '../orchestrator/config';
import { readRulesFile } from '../orchestrator/routing/rules';
import { localKafkaUsers } from '../scripts/kafka-local';
import { COMMAND_LINE_NODE_FLAGS } from '../scripts/processes';
import { serviceSpecs } from '../scripts/stack';
import { loadTopicsCliConfig, topicsCliEnvKeys } from '../topics/create-cli';

// docker-compose.yml is only run where Docker exists; this keeps it in step
// with the code that does run here: config schemas, seed rules, `npm start`.
const ROOT = path.resolve(__dirname, '..');

const envValue = z.union([z.string(), z.number(), z.boolean(), z.null()]);
const composeService = z.object({
  image: z.string().optional(),
  build: z.unknown().optional(),
  command: z.union([z.string(), z.array(z.string())]).optional(),
  environment: z.union([z.record(z.string(), envValue), z.array(z.string())]).optional(),
  ports: z.array(z.union([z.string(), z.number()])).optional(),
  depends_on: z.union([z.array(z.string()), z.record(z.string(), z.object({ condition: z.string() }))]).optional(),
  healthcheck: z.object({ test: z.union([z.string(), z.array(z.string())]) }).optional(),
  volumes: z.array(z.string()).optional(),
  init: z.boolean().optional(),
  stop_grace_period: z.string().optional(),
});
type ComposeService = z.infer<typeof composeService>;

const compose = z
  .object({ services: z.record(z.string(), composeService) })
  .parse(parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }));
const services = Object.entries(compose.services);
const gatewayIds = readRulesFile(path.join(ROOT, 'config/gateways.json')).map((rule) => rule.gatewayId);

/** `${NAME:-default}` as compose fills it when NAME is not set in the shell or .env: the default. */
const interpolate = (value: string) => value.replace(/\$\{\w+(?::?-([^}]*))?\}/g, (_match, fallback: string | undefined) => fallback ?? '');

/** The environment as the container sees it (with no variables set on the host): every value a string. */
function envOf(service: ComposeService): Record<string, string> {
  const { environment } = service;
  if (Array.isArray(environment)) {
    return Object.fromEntries(environment.map((entry) => [entry.split('=')[0] ?? '', interpolate(entry.slice(entry.indexOf('=') + 1))]));
  }
  return Object.fromEntries(
    Object.entries(environment ?? {}).flatMap(([key, value]) => (value === null ? [] : [[key, interpolate(String(value))]])),
  );
}

const commandOf = (service: ComposeService) => [service.command ?? []].flat().join(' ');

/** Compose's duration (`20s`, `1m30s`, `500ms`) in milliseconds. */
function durationMs(value: string): number {
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 };
  const parts = [...value.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)];
  if (parts.length === 0 || parts.map((part) => part[0]).join('') !== value) throw new Error(`not a compose duration: ${value}`);
  return parts.reduce((total, [, amount = '0', unit = 's']) => total + Number(amount) * (units[unit] ?? 0), 0);
}
/** Docker's wait between SIGTERM and SIGKILL when a service sets none. */
const DOCKER_DEFAULT_STOP_GRACE_MS = 10_000;

/**
 * The Node programs the image runs, each with the variables its config
 * schema reads, its loader, and the `service` label its metrics carry.
 */
const programs = [
  { script: 'orchestrator/main.ts', keys: orchestratorEnvKeys, load: loadOrchestratorConfig, metricsService: () => 'orchestrator' },
  { script: 'gateways/main.ts', keys: gatewayEnvKeys, load: loadGatewayConfig, metricsService: (env: Record<string, string>) => `gateway-${env.GATEWAY_ID}` },
  { script: 'backoffice/main.ts', keys: backofficeEnvKeys, load: loadBackofficeConfig, metricsService: () => 'backoffice' },
  { script: 'grafana/alert-receiver/main.ts', keys: alertReceiverEnvKeys, load: loadAlertReceiverConfig, metricsService: () => 'alert-receiver' },
  { script: 'topics/create-cli.ts', keys: topicsCliEnvKeys, load: loadTopicsCliConfig, metricsService: undefined },
];
const programOf = (service: ComposeService) => programs.find((program) => commandOf(service).includes(program.script));

const nodeServices = services.filter(([, service]) => service.build !== undefined);
const gatewayServices = nodeServices.filter(([, service]) => programOf(service)?.script === 'gateways/main.ts');
const service = (name: string): ComposeService => {
  const found = compose.services[name];
  if (!found) throw new Error(`docker-compose.yml has no service ${name}`);
  return found;
};

describe('docker-compose.yml against the code', () => {
  test('When the compose file is read, then it defines Kafka, Redis, topic creation, two orchestrators, the back office, every gateway and the monitoring', () => {
    const names = services.map(([name]) => name);
    expect(names).toEqual(
      expect.arrayContaining([
        'kafka',
        'redis',
        'topics',
        'orchestrator',
        'orchestrator-2',
        'backoffice',
        'gateway-alpha',
        'gateway-beta',
        'gateway-gamma',
        'alert-receiver',
        'prometheus',
        'alertmanager',
        'grafana',
      ]),
    );
  });

  test('When a service is built from the Dockerfile, then its command runs one of the Node programs', () => {
    expect(nodeServices.length).toBeGreaterThan(0);
    for (const [name, definition] of nodeServices) {
      expect({ name, script: programOf(definition)?.script }).toEqual({ name, script: expect.any(String) });
    }
  });

  test('When config/gateways.json lists a gateway, then exactly one compose service runs it with that GATEWAY_ID', () => {
    const ids = gatewayServices.map(([, definition]) => envOf(definition).GATEWAY_ID);
    expect([...ids].sort()).toEqual([...gatewayIds].sort());
  });

  test('When a Node service sets an environment variable, then its config schema reads that variable', () => {
    for (const [name, definition] of nodeServices) {
      const known = programOf(definition)?.keys ?? [];
      const unknown = Object.keys(envOf(definition)).filter((key) => !known.includes(key));
      expect({ name, unknown }).toEqual({ name, unknown: [] });
    }
  });

  test('When a Node service starts with the compose environment alone, then its own config loader accepts it', () => {
    for (const [name, definition] of nodeServices) {
      const load = () => {
        const program = programOf(definition);
        if (!program) throw new Error(`${name} runs no known program`);
        try {
          program.load(envOf(definition));
        } catch (error) {
          throw new Error(`${name}: ${error instanceof Error ? error.message : String(error)}`);
        }
      };
      expect(load).not.toThrow();
    }
    for (const [, definition] of gatewayServices) {
      expect(loadGatewayConfig(envOf(definition)).GATEWAY_ID).toMatch(/\S/);
    }
  });

  test('When the stack runs under compose, then each service has the name, program, published port and settings of npm start', () => {
    for (const spec of serviceSpecs(gatewayIds)) {
      const definition = service(spec.name);
      expect(commandOf(definition)).toContain(spec.script);
      expect(definition.ports?.map(String)).toEqual([`${spec.port}:${spec.port}`]);
      expect(envOf(definition)).toMatchObject(spec.env);
    }
  });

  test('When compose runs Kafka, then it is apache/kafka with the major.minor of the locally tested broker', () => {
    const pom = readFileSync(path.join(ROOT, 'scripts/kafka/pom.xml'), 'utf8');
    const local = /<kafka\.version>(\d+)\.(\d+)\.[^<]+<\/kafka\.version>/.exec(pom);
    expect(local).not.toBeNull();
    const image = /^apache\/kafka:(\d+)\.(\d+)(\.\S+)?$/.exec(service('kafka').image ?? '');
    expect(image?.slice(1, 3)).toEqual(local?.slice(1, 3));
  });

  test('When a Node service connects, then KAFKA_BROKERS is the advertised listener and REDIS_URL the redis service', () => {
    const advertised = envOf(service('kafka')).KAFKA_ADVERTISED_LISTENERS ?? '';
    for (const [name, definition] of nodeServices) {
      const brokers = envOf(definition).KAFKA_BROKERS ?? '';
      expect({ name, advertised: brokers.split(',').every((broker) => advertised.includes(`://${broker}`)) }).toEqual({ name, advertised: true });
    }
    expect(envOf(service('orchestrator')).REDIS_URL).toBe('redis://redis:6379');
  });

  test('When a Node service connects to Kafka, then it authenticates (SASL/SCRAM) as its own principal, and the topics job as the super user', () => {
    const principalOf: Record<string, string> = { 'orchestrator/main.ts': 'orchestrator', 'gateways/main.ts': 'gateway', 'backoffice/main.ts': 'backoffice', 'topics/create-cli.ts': 'admin' };
    for (const [name, definition] of nodeServices) {
      const env = envOf(definition);
      if (env.KAFKA_BROKERS === undefined) continue;
      const script = programOf(definition)?.script ?? '';
      expect({ name, mechanism: env.KAFKA_SASL_MECHANISM, user: env.KAFKA_SASL_USERNAME, password: env.KAFKA_SASL_PASSWORD === undefined ? undefined : 'set' }).toEqual({
        name,
        mechanism: 'SCRAM-SHA-512',
        user: principalOf[script],
        password: 'set',
      });
    }
    const broker = envOf(service('kafka'));
    expect(broker.KAFKA_AUTHORIZER_CLASS_NAME).toBe('org.apache.kafka.metadata.authorizer.StandardAuthorizer');
    expect(broker.KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND).toBe('false');
    expect(broker.KAFKA_LISTENER_SECURITY_PROTOCOL_MAP).not.toMatch(/:PLAINTEXT\b/);
    // The users the volume is formatted with are the local broker's (scripts/kafka/local-users).
    const formatted = [...commandOf(service('kafka-format')).matchAll(/name=(\w+),/g)].map((match) => match[1]).sort();
    expect(formatted).toEqual([...localKafkaUsers().keys()].sort());
  });

  test('When the orchestrator or a gateway starts, then Kafka is healthy and the topics exist (and Redis is healthy for the orchestrator)', () => {
    expect(service('kafka').healthcheck).toBeDefined();
    expect(service('redis').healthcheck).toBeDefined();
    expect(commandOf(service('redis'))).toMatch(/--appendonly yes/);
    const afterTopics = { kafka: { condition: 'service_healthy' }, topics: { condition: 'service_completed_successfully' } };
    expect(service('orchestrator').depends_on).toEqual({ ...afterTopics, redis: { condition: 'service_healthy' } });
    for (const [name, definition] of gatewayServices) {
      expect({ name, dependsOn: definition.depends_on }).toEqual({ name, dependsOn: afterTopics });
    }
  });

  test('When docker stops a long-running Node service, then it waits longer than the drain the service allows itself (SHUTDOWN_GRACE_MS), and tini hands node the signal', () => {
    const longRunning = nodeServices.filter(([, definition]) => programOf(definition)?.metricsService !== undefined);
    expect(longRunning.length).toBeGreaterThan(0);
    for (const [name, definition] of longRunning) {
      const config = programOf(definition)?.load(envOf(definition)) as { SHUTDOWN_GRACE_MS?: number } | undefined;
      const drainMs = config?.SHUTDOWN_GRACE_MS ?? 0;
      const graceMs = definition.stop_grace_period === undefined ? DOCKER_DEFAULT_STOP_GRACE_MS : durationMs(definition.stop_grace_period);
      expect({ name, drainMs: drainMs > 0, covered: graceMs > drainMs, init: definition.init }).toEqual({ name, drainMs: true, covered: true, init: true });
      // node itself, not a wrapper that might not pass the signal on, with the heap flag node refuses in NODE_OPTIONS (ADR 0021).
      expect({ name, command: [definition.command ?? []].flat().slice(0, 4) }).toEqual({ name, command: ['node', ...COMMAND_LINE_NODE_FLAGS, '--import', 'tsx'] });
    }
  });

  test("When compose checks a long-running Node service's health, then it asks /readyz on the service's own PORT", () => {
    const longRunning = nodeServices.filter(([, definition]) => programOf(definition)?.metricsService !== undefined);
    for (const [name, definition] of longRunning) {
      const check = [definition.healthcheck?.test ?? []].flat().join(' ');
      expect({ name, readyz: check.includes("process.env.PORT + '/readyz'"), port: envOf(definition).PORT }).toEqual({ name, readyz: true, port: expect.stringMatching(/^\d+$/) });
    }
  });

  test('When two orchestrators run, then they differ only in INSTANCE_ID and published port', () => {
    const orchestrators = nodeServices.filter(([, definition]) => programOf(definition)?.script === 'orchestrator/main.ts');
    expect(orchestrators.map(([name]) => name)).toEqual(['orchestrator', 'orchestrator-2']);
    const ids = orchestrators.map(([, definition]) => envOf(definition).INSTANCE_ID);
    expect(new Set(ids).size).toBe(2);
    const [first, second] = orchestrators.map(([, definition]) => ({ ...definition, ports: undefined, environment: { ...envOf(definition), INSTANCE_ID: undefined } }));
    expect(second).toEqual(first);
  });
});

const grafanaFile = (relative: string) => parse(readFileSync(path.join(ROOT, 'grafana', relative), 'utf8')) as unknown;
const prometheusYml = z
  .object({
    rule_files: z.array(z.string()),
    alerting: z.object({ alertmanagers: z.array(z.object({ static_configs: z.array(z.object({ targets: z.array(z.string()) })) })) }),
    scrape_configs: z.array(
      z.object({
        job_name: z.string(),
        honor_labels: z.boolean().optional(),
        static_configs: z.array(z.object({ targets: z.array(z.string()), labels: z.record(z.string(), z.string()) })),
      }),
    ),
  })
  .parse(grafanaFile('prometheus/prometheus.yml'));
const webhookUrls = z
  .object({ receivers: z.array(z.object({ webhook_configs: z.array(z.object({ url: z.string() })).optional() })) })
  .parse(grafanaFile('alertmanager/alertmanager.yml'))
  .receivers.flatMap((receiver) => (receiver.webhook_configs ?? []).map((webhook) => webhook.url));
/** `./grafana/x:/etc/y:ro` → the container path of the host folder. */
const mountOf = (name: string, hostPath: string) =>
  service(name)
    .volumes?.map((volume) => volume.split(':'))
    .find(([host]) => host === hostPath)?.[1];
const commandFlag = (name: string, flag: string) => [service(name).command ?? []].flat().find((arg) => arg.startsWith(`--${flag}=`))?.split('=')[1];

describe('docker-compose.yml against the Prometheus, Alertmanager and Grafana configuration', () => {
  const scraped = prometheusYml.scrape_configs.flatMap((job) => job.static_configs.flatMap((entry) => entry.targets.map((target) => ({ job: job.job_name, target, labels: entry.labels }))));
  const longRunning = nodeServices.filter(([, definition]) => programOf(definition)?.metricsService !== undefined);

  test('When Prometheus scrapes, then every long-running Node service is a target exactly once, at its container PORT', () => {
    expect(scraped.map(({ target }) => target).sort()).toEqual(longRunning.map(([name, definition]) => `${name}:${envOf(definition).PORT}`).sort());
  });

  test("When a target is scraped, then its labels are the service's own metric labels (service, and gateway for a gateway)", () => {
    for (const { target, labels } of scraped) {
      const [name = ''] = target.split(':');
      const env = envOf(service(name));
      const expected = { service: programOf(service(name))?.metricsService?.(env), ...(env.GATEWAY_ID ? { gateway: env.GATEWAY_ID } : {}) };
      expect({ target, labels }).toEqual({ target, labels: expected });
    }
    // The services label their own metrics with `service`: theirs are kept, so `up` and the metrics match.
    expect(prometheusYml.scrape_configs.every((job) => job.honor_labels === true)).toBe(true);
  });

  test('When Prometheus starts, then it reads prometheus.yml and alerts.yml from the mounted grafana/prometheus folder', () => {
    const mounted = mountOf('prometheus', './grafana/prometheus');
    expect(commandFlag('prometheus', 'config.file')).toBe(`${mounted}/prometheus.yml`);
    for (const file of prometheusYml.rule_files) expect(() => readFileSync(path.join(ROOT, 'grafana/prometheus', file))).not.toThrow();
  });

  test('When an alert fires, then Prometheus sends it to the alertmanager service, which posts to the alert receiver’s webhook', () => {
    const alertmanagerPort = service('alertmanager').ports?.map(String)[0]?.split(':')[1];
    expect(prometheusYml.alerting.alertmanagers.flatMap((entry) => entry.static_configs.flatMap((config) => config.targets))).toEqual([`alertmanager:${alertmanagerPort}`]);
    expect(commandFlag('alertmanager', 'config.file')).toBe(`${mountOf('alertmanager', './grafana/alertmanager')}/alertmanager.yml`);
    expect(webhookUrls).toEqual([`http://alert-receiver:${envOf(service('alert-receiver')).PORT}${WEBHOOK_PATH}`]);
  });

  test('When Grafana starts, then it provisions the Prometheus service as data source and loads the dashboards folder', () => {
    expect(mountOf('grafana', './grafana/provisioning')).toBe('/etc/grafana/provisioning');
    const datasources = z.object({ datasources: z.array(z.object({ uid: z.string(), url: z.string() })) }).parse(grafanaFile('provisioning/datasources/prometheus.yml'));
    expect(datasources.datasources.map((source) => source.url)).toEqual([`http://prometheus:${service('prometheus').ports?.map(String)[0]?.split(':')[1]}`]);
    const providers = z.object({ providers: z.array(z.object({ options: z.object({ path: z.string() }) })) }).parse(grafanaFile('provisioning/dashboards/dashboards.yml'));
    expect(providers.providers.map((provider) => provider.options.path)).toEqual([mountOf('grafana', './grafana/dashboards')]);
    expect(envOf(service('grafana')).GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH).toMatch(new RegExp(`^${mountOf('grafana', './grafana/dashboards')}/[\\w-]+\\.json$`));
  });

  test('When the monitoring starts, then each part waits for the one it sends to: receiver, then Alertmanager, then Prometheus, then Grafana', () => {
    expect(service('alertmanager').depends_on).toEqual({ 'alert-receiver': { condition: 'service_healthy' } });
    expect(service('prometheus').depends_on).toEqual({ alertmanager: { condition: 'service_healthy' } });
    expect(service('grafana').depends_on).toEqual({ prometheus: { condition: 'service_healthy' } });
    for (const name of ['alert-receiver', 'alertmanager', 'prometheus', 'grafana']) expect({ name, healthcheck: service(name).healthcheck !== undefined }).toEqual({ name, healthcheck: true });
  });
});
