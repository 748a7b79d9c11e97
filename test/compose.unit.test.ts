import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { backofficeEnvKeys, loadBackofficeConfig } from '../backoffice/config';
import { gatewayEnvKeys, loadGatewayConfig } from '../gateways/config';
import { loadOrchestratorConfig, orchestratorEnvKeys } from '../orchestrator/config';
import { readRulesFile } from '../orchestrator/routing/rules';
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
});
type ComposeService = z.infer<typeof composeService>;

const compose = z
  .object({ services: z.record(z.string(), composeService) })
  .parse(parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }));
const services = Object.entries(compose.services);
const gatewayIds = readRulesFile(path.join(ROOT, 'config/gateways.json')).map((rule) => rule.gatewayId);

/** The environment as the container sees it: every value a string. */
function envOf(service: ComposeService): Record<string, string> {
  const { environment } = service;
  if (Array.isArray(environment)) {
    return Object.fromEntries(environment.map((entry) => [entry.split('=')[0] ?? '', entry.slice(entry.indexOf('=') + 1)]));
  }
  return Object.fromEntries(
    Object.entries(environment ?? {}).flatMap(([key, value]) => (value === null ? [] : [[key, String(value)]])),
  );
}

const commandOf = (service: ComposeService) => [service.command ?? []].flat().join(' ');

/** The Node programs the image runs, each with the variables its config schema reads and its loader. */
const programs = [
  { script: 'orchestrator/main.ts', keys: orchestratorEnvKeys, load: loadOrchestratorConfig },
  { script: 'gateways/main.ts', keys: gatewayEnvKeys, load: loadGatewayConfig },
  { script: 'backoffice/main.ts', keys: backofficeEnvKeys, load: loadBackofficeConfig },
  { script: 'topics/create-cli.ts', keys: topicsCliEnvKeys, load: loadTopicsCliConfig },
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
  test('When the compose file is read, then it defines Kafka, Redis, topic creation, the orchestrator and every gateway', () => {
    const names = services.map(([name]) => name);
    expect(names).toEqual(
      expect.arrayContaining(['kafka', 'redis', 'topics', 'orchestrator', 'gateway-alpha', 'gateway-beta', 'gateway-gamma']),
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
});
