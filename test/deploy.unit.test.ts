import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments, parse } from 'yaml';
import { z } from 'zod';
import { backofficeEnvKeys, loadBackofficeConfig } from '../backoffice/config';
import { gatewayEnvKeys, loadGatewayConfig } from '../gateways/config';
import { loadOrchestratorConfig, orchestratorEnvKeys } from '../orchestrator/config';
import { readRulesFile } from '../orchestrator/routing/rules';
import { COMMAND_LINE_NODE_FLAGS } from '../scripts/processes';
import { serviceSpecs } from '../scripts/stack';
import { topicNames } from '../topics/names';
import { loadTopicsCliConfig, topicsCliEnvKeys } from '../topics/create-cli';

// deploy/ is only applied where a cluster exists; this validates every
// manifest against the Kubernetes (kubernetes-models) and KEDA
// (@kubernetes-models/keda) schemas, and keeps ports, probes, variables,
// grace periods, sizes and the autoscaler in step with the code and the
// benchmarks.
const ROOT = path.resolve(__dirname, '..');
const DEPLOY = path.join(ROOT, 'deploy');
const manifestFiles = readdirSync(DEPLOY).filter((file) => file.endsWith('.yaml') && file !== 'kustomization.yaml');

const metadata = z.object({ name: z.string(), labels: z.record(z.string(), z.string()).optional() });
/** Only the fields the checks below read; the full schemas are checked by kubernetes-models. */
const manifest = z.object({ apiVersion: z.string(), kind: z.string(), metadata }).passthrough();
type Manifest = z.infer<typeof manifest>;

const documents: Array<{ file: string; doc: Manifest }> = manifestFiles.flatMap((file) =>
  parseAllDocuments(readFileSync(path.join(DEPLOY, file), 'utf8')).map((document) => {
    if (document.errors.length > 0) throw new Error(`${file}: ${document.errors[0]?.message}`);
    return { file, doc: manifest.parse(document.toJS()) };
  }),
);

/**
 * Validates manifests in a child node: the model packages are ES modules,
 * which jest's CommonJS runtime cannot load. Resolves with one error message
 * per manifest ('' when valid).
 */
function validateWithModels(manifests: unknown[]): string[] {
  const script = `
    import { readFileSync } from 'node:fs';
    const docs = JSON.parse(readFileSync(0, 'utf8'));
    const errors = [];
    for (const doc of docs) {
      const [group, version] = doc.apiVersion.includes('/') ? doc.apiVersion.split('/') : ['', doc.apiVersion];
      const module = group === 'keda.sh'
        ? '@kubernetes-models/keda/keda.sh/' + version
        : 'kubernetes-models/' + (group ? group + '/' : '') + version;
      try {
        const Model = (await import(module))[doc.kind];
        if (!Model) throw new Error('no model for ' + doc.apiVersion + ' ' + doc.kind);
        new Model(doc).validate();
        errors.push('');
      } catch (error) {
        errors.push(String(error && error.message || error));
      }
    }
    process.stdout.write(JSON.stringify(errors));`;
  const output = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, input: JSON.stringify(manifests), encoding: 'utf8' });
  return z.array(z.string()).parse(JSON.parse(output));
}

const envVar = z.object({
  name: z.string(),
  value: z.string().optional(),
  valueFrom: z
    .object({
      fieldRef: z.object({ fieldPath: z.string() }).optional(),
      secretKeyRef: z.object({ name: z.string(), key: z.string() }).optional(),
      configMapKeyRef: z.object({ name: z.string(), key: z.string() }).optional(),
    })
    .optional(),
});
const httpProbe = z.object({ httpGet: z.object({ path: z.string(), port: z.union([z.string(), z.number()]) }) });
const container = z.object({
  name: z.string(),
  image: z.string(),
  command: z.array(z.string()),
  ports: z.array(z.object({ name: z.string().optional(), containerPort: z.number() })).optional(),
  envFrom: z.array(z.object({ configMapRef: z.object({ name: z.string() }) })).optional(),
  env: z.array(envVar).optional(),
  resources: z.object({
    requests: z.object({ cpu: z.string(), memory: z.string() }),
    limits: z.object({ memory: z.string() }),
  }),
  readinessProbe: httpProbe.optional(),
  livenessProbe: httpProbe.optional(),
  startupProbe: httpProbe.optional(),
  lifecycle: z.object({ preStop: z.object({ exec: z.object({ command: z.array(z.string()) }) }) }).optional(),
  securityContext: z.unknown(),
  volumeMounts: z.unknown(),
})
  // The Kubernetes schemas accept unknown fields, so a misspelt probe would pass them unnoticed: not these.
  .strict();
const podTemplate = z.object({
  metadata: z.object({ labels: z.record(z.string(), z.string()) }),
  spec: z.object({ terminationGracePeriodSeconds: z.number().optional(), containers: z.array(container).length(1) }),
});
const workload = z.object({
  kind: z.enum(['Deployment', 'Job']),
  metadata,
  spec: z.object({ replicas: z.number().optional(), selector: z.object({ matchLabels: z.record(z.string(), z.string()) }).optional(), template: podTemplate }),
});
type Workload = z.infer<typeof workload>;
const service = z.object({
  metadata,
  spec: z.object({ selector: z.record(z.string(), z.string()), ports: z.array(z.object({ name: z.string().optional(), port: z.number(), targetPort: z.union([z.string(), z.number()]) })) }),
});
const pdb = z.object({
  metadata,
  spec: z.object({ maxUnavailable: z.number().optional(), minAvailable: z.number().optional(), selector: z.object({ matchLabels: z.record(z.string(), z.string()) }) }),
});
const scaledObject = z.object({
  metadata,
  spec: z.object({
    scaleTargetRef: z.object({ name: z.string() }),
    minReplicaCount: z.number(),
    maxReplicaCount: z.number(),
    triggers: z.array(z.object({ type: z.string(), metadata: z.record(z.string(), z.string()) })),
  }),
});
const configMap = z.object({ metadata, data: z.record(z.string(), z.string()) });
const secret = z.object({ metadata, stringData: z.record(z.string(), z.string()) });

const ofKind = <T>(kind: string, schema: z.ZodType<T>): T[] => documents.filter(({ doc }) => doc.kind === kind).map(({ doc }) => schema.parse(doc));
const workloads = [...ofKind('Deployment', workload), ...ofKind('Job', workload)];
const deployments = workloads.filter((w) => w.kind === 'Deployment');
const configMaps = new Map(ofKind('ConfigMap', configMap).map((map) => [map.metadata.name, map.data]));
const secrets = new Map(ofKind('Secret', secret).map((entry) => [entry.metadata.name, entry.stringData]));
const services = ofKind('Service', service);
const budgets = ofKind('PodDisruptionBudget', pdb);
const scaledObjects = ofKind('ScaledObject', scaledObject);
const gatewayIds = readRulesFile(path.join(ROOT, 'config/gateways.json')).map((rule) => rule.gatewayId);

/** The Node programs the image runs, with the variables each one's config schema reads and its loader. */
const programs = [
  { script: 'orchestrator/main.ts', keys: orchestratorEnvKeys, load: loadOrchestratorConfig },
  { script: 'gateways/main.ts', keys: gatewayEnvKeys, load: loadGatewayConfig },
  { script: 'backoffice/main.ts', keys: backofficeEnvKeys, load: loadBackofficeConfig },
  { script: 'topics/create-cli.ts', keys: topicsCliEnvKeys, load: loadTopicsCliConfig },
];
const containerOf = (w: Workload) => {
  const [only] = w.spec.template.spec.containers;
  if (!only) throw new Error(`${w.metadata.name} has no container`);
  return only;
};
const programOf = (w: Workload) => {
  const program = programs.find((candidate) => containerOf(w).command.includes(candidate.script));
  if (!program) throw new Error(`${w.metadata.name} runs no known program: ${containerOf(w).command.join(' ')}`);
  return program;
};

/** The environment the container sees: its ConfigMaps, literal values, the Secret's (example) values, and the pod name. */
function envOf(w: Workload): Record<string, string> {
  const c = containerOf(w);
  const fromMaps = Object.assign({}, ...(c.envFrom ?? []).map((source) => configMaps.get(source.configMapRef.name) ?? {})) as Record<string, string>;
  const own = (c.env ?? []).map(({ name, value, valueFrom }): [string, string | undefined] => {
    if (value !== undefined) return [name, value];
    if (valueFrom?.fieldRef) return [name, `${w.metadata.name}-pod`];
    if (valueFrom?.secretKeyRef) return [name, secrets.get(valueFrom.secretKeyRef.name)?.[valueFrom.secretKeyRef.key]];
    if (valueFrom?.configMapKeyRef) return [name, configMaps.get(valueFrom.configMapKeyRef.name)?.[valueFrom.configMapKeyRef.key]];
    return [name, undefined];
  });
  return { ...fromMaps, ...Object.fromEntries(own.filter((entry): entry is [string, string] => entry[1] !== undefined)) };
}

/** Kubernetes quantities: CPU in millicores, memory in MiB. */
const millicores = (cpu: string) => (cpu.endsWith('m') ? Number(cpu.slice(0, -1)) : Number(cpu) * 1000);
const mebibytes = (memory: string) => {
  const match = /^(\d+(?:\.\d+)?)(Mi|Gi)$/.exec(memory);
  if (!match) throw new Error(`memory quantity not in Mi or Gi: ${memory}`);
  return Number(match[1]) * (match[2] === 'Gi' ? 1024 : 1);
};

/** The benchmarks' measured processes (docs/benchmarks/*.json), by name. */
const benchmarkProcess = z.object({ name: z.string(), cpuAvgPercent: z.number(), rssAvgMB: z.number(), rssPeakMB: z.number() });
const measured = ['throughput.json', 'soak.json'].flatMap((file) =>
  z
    .object({ phases: z.array(z.object({ processes: z.array(benchmarkProcess) })) })
    .parse(JSON.parse(readFileSync(path.join(ROOT, 'docs/benchmarks', file), 'utf8')))
    .phases.flatMap((phase) => phase.processes),
);

/** docs/deployment.md's sizing table: each row's process, request ("900m CPU, 288 Mi") and memory limit ("384 Mi"). */
function documentedSizes(): Array<{ process: string; request: string; limit: string }> {
  const doc = readFileSync(path.join(ROOT, 'docs/deployment.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## Sizing'), doc.indexOf('\n## ', doc.indexOf('## Sizing') + 1));
  const rows = section.split('\n').filter((line) => line.startsWith('| ') && !line.startsWith('| process ') && !line.startsWith('| ---'));
  return rows.map((row) => {
    const cells = row.split('|').slice(1, -1).map((cell) => cell.trim());
    return { process: cells[0] ?? '', request: cells[3] ?? '', limit: cells[4] ?? '' };
  });
}
/** The sizing table's row for each program the manifests run. */
const SIZING_ROW_OF: Record<string, string> = {
  'orchestrator/main.ts': 'orchestrator',
  'gateways/main.ts': 'gateway worker (sandbox)',
  'backoffice/main.ts': 'back office',
  'topics/create-cli.ts': 'topics Job',
};

/** Milliseconds the preStop hook holds the pod before SIGTERM (`sleep N`). */
const preStopMs = (w: Workload) => {
  const command = containerOf(w).lifecycle?.preStop.exec.command ?? [];
  return command[0] === 'sleep' ? Number(command[1]) * 1000 : 0;
};
/** Room for the process to exit once its drain has ended, in milliseconds. */
const EXIT_MARGIN_MS = 2_000;

describe('deploy/ against the Kubernetes schemas', () => {
  test('When every manifest is validated with kubernetes-models (KEDA with @kubernetes-models/keda), then none has a schema error', () => {
    const errors = validateWithModels(documents.map(({ doc }) => doc));
    const failures = documents.flatMap(({ file, doc }, index) => (errors[index] ? [`${file} ${doc.kind}/${doc.metadata.name}: ${errors[index]}`] : []));
    expect(failures).toEqual([]);
    expect(errors).toHaveLength(documents.length);
  });

  test('When a manifest is broken, then the validator says so (the check above is live)', () => {
    const [orchestrator] = documents.filter(({ doc }) => doc.kind === 'Deployment' && doc.metadata.name === 'orchestrator');
    const broken = JSON.parse(JSON.stringify(orchestrator?.doc)) as { spec: { template: { spec: { containers: Array<{ ports: Array<{ containerPort: unknown }> }> } } } };
    const port = broken.spec.template.spec.containers[0]?.ports[0];
    if (port) port.containerPort = 'eighty';
    const [brokenScaler] = scaledObjects.map((scaler) => ({ ...scaler, apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledObject', spec: { ...scaler.spec, minReplicaCount: 'two' } }));
    const errors = validateWithModels([broken, brokenScaler]);
    expect(errors.every((error) => error.length > 0)).toBe(true);
  });

  test('When kustomize builds deploy/, then it applies every manifest but the example Secret', () => {
    const kustomization = z.object({ resources: z.array(z.string()) }).parse(parse(readFileSync(path.join(DEPLOY, 'kustomization.yaml'), 'utf8')));
    expect([...kustomization.resources].sort()).toEqual(manifestFiles.filter((file) => file !== 'secrets.example.yaml').sort());
  });
});

describe('deploy/ against the code', () => {
  test('When the manifests are read, then they run the orchestrator, the back office, one gateway worker per configured gateway, and the topics job', () => {
    expect(workloads.map((w) => `${w.kind}/${w.metadata.name}:${programOf(w).script}`).sort()).toEqual(
      [
        'Deployment/orchestrator:orchestrator/main.ts',
        'Deployment/backoffice:backoffice/main.ts',
        ...gatewayIds.map((id) => `Deployment/gateway-${id}:gateways/main.ts`),
        'Job/topics:topics/create-cli.ts',
      ].sort(),
    );
  });

  test('When a container sets or imports a variable, then its program’s config schema reads it', () => {
    for (const w of workloads) {
      const unknown = Object.keys(envOf(w)).filter((key) => !programOf(w).keys.includes(key));
      expect({ name: w.metadata.name, unknown }).toEqual({ name: w.metadata.name, unknown: [] });
    }
  });

  test('When a pod starts with its manifest environment (production keys from the example Secret), then its config loader accepts it', () => {
    for (const w of workloads) {
      const load = () => {
        try {
          programOf(w).load(envOf(w));
        } catch (error) {
          throw new Error(`${w.metadata.name}: ${error instanceof Error ? error.message : String(error)}`);
        }
      };
      expect(load).not.toThrow();
    }
  });

  test('When a variable comes from a Secret or a ConfigMap, then that object and key exist in deploy/', () => {
    for (const w of workloads) {
      const c = containerOf(w);
      for (const source of c.envFrom ?? []) expect({ name: w.metadata.name, map: configMaps.has(source.configMapRef.name) }).toEqual({ name: w.metadata.name, map: true });
      for (const { name, valueFrom } of c.env ?? []) {
        const secretRef = valueFrom?.secretKeyRef;
        const mapRef = valueFrom?.configMapKeyRef;
        if (secretRef) expect({ name, found: secrets.get(secretRef.name)?.[secretRef.key] !== undefined }).toEqual({ name, found: true });
        if (mapRef) expect({ name, found: configMaps.get(mapRef.name)?.[mapRef.key] !== undefined }).toEqual({ name, found: true });
      }
    }
  });

  test('When a service runs in production, then its signing keys come from a Secret, never from a literal value', () => {
    for (const w of workloads) {
      for (const variable of containerOf(w).env ?? []) {
        if (['AUTH_JWT_SECRET', 'RULES_SIGNING_KEY', 'HEALTH_SIGNING_KEY'].includes(variable.name)) {
          expect({ workload: w.metadata.name, variable: variable.name, fromSecret: variable.valueFrom?.secretKeyRef !== undefined }).toEqual({
            workload: w.metadata.name,
            variable: variable.name,
            fromSecret: true,
          });
        }
      }
      const env = envOf(w);
      if (programOf(w).keys.includes('APP_ENV')) expect({ name: w.metadata.name, appEnv: env.APP_ENV }).toEqual({ name: w.metadata.name, appEnv: 'production' });
    }
  });

  test('When the kubelet probes a Deployment, then it asks /readyz for readiness and /healthz for liveness on the port the service listens on', () => {
    for (const w of deployments) {
      const c = containerOf(w);
      const config = programOf(w).load(envOf(w)) as { PORT: number };
      const named = c.ports?.find((entry) => entry.name === 'http');
      expect({ name: w.metadata.name, containerPort: named?.containerPort }).toEqual({ name: w.metadata.name, containerPort: config.PORT });
      expect({
        name: w.metadata.name,
        readiness: c.readinessProbe?.httpGet,
        liveness: c.livenessProbe?.httpGet,
        startup: c.startupProbe?.httpGet,
      }).toEqual({
        name: w.metadata.name,
        readiness: { path: '/readyz', port: 'http' },
        liveness: { path: '/healthz', port: 'http' },
        startup: { path: '/healthz', port: 'http' },
      });
    }
  });

  test('When a pod is stopped, then its grace period covers the preStop pause, the drain the service allows itself (SHUTDOWN_GRACE_MS) and its exit', () => {
    for (const w of deployments) {
      const { SHUTDOWN_GRACE_MS: drainMs } = programOf(w).load(envOf(w)) as { SHUTDOWN_GRACE_MS: number };
      const graceMs = (w.spec.template.spec.terminationGracePeriodSeconds ?? 30) * 1000;
      expect({ name: w.metadata.name, preStopMs: preStopMs(w) > 0, covered: graceMs >= preStopMs(w) + drainMs + EXIT_MARGIN_MS }).toEqual({
        name: w.metadata.name,
        preStopMs: true,
        covered: true,
      });
      // node itself, not a wrapper: the kubelet's SIGTERM must reach the service.
      // With the heap flag node refuses in NODE_OPTIONS (ADR 0021), as scripts/processes.ts runs services.
      expect({ name: w.metadata.name, command: containerOf(w).command.slice(0, 4) }).toEqual({ name: w.metadata.name, command: ['node', ...COMMAND_LINE_NODE_FLAGS, '--import', 'tsx'] });
    }
  });

  test('When a Deployment runs, then a Service sends to its named port and a PodDisruptionBudget covers its pods', () => {
    for (const w of deployments) {
      const labels = w.spec.template.metadata.labels;
      const selects = (selector: Record<string, string>) => Object.entries(selector).every(([key, value]) => labels[key] === value);
      const port = containerOf(w).ports?.find((entry) => entry.name === 'http')?.containerPort;
      const own = services.filter((entry) => selects(entry.spec.selector));
      expect({ name: w.metadata.name, services: own.map((entry) => entry.spec.ports) }).toEqual({ name: w.metadata.name, services: [[{ name: 'http', port, targetPort: 'http' }]] });
      expect({ name: w.metadata.name, selectorMatchesPods: selects(w.spec.selector?.matchLabels ?? { none: 'none' }) }).toEqual({ name: w.metadata.name, selectorMatchesPods: true });
      const budget = budgets.filter((entry) => selects(entry.spec.selector.matchLabels));
      expect({ name: w.metadata.name, budgets: budget.length }).toEqual({ name: w.metadata.name, budgets: 1 });
    }
  });

  test('When a gateway worker runs on the cluster, then it has the GATEWAY_ID and sandbox profile npm start and compose give it', () => {
    for (const spec of serviceSpecs(gatewayIds).filter((entry) => entry.script === 'gateways/main.ts')) {
      const w = deployments.find((entry) => entry.metadata.name === spec.name);
      const { PORT: _port, ...settings } = spec.env;
      expect({ name: spec.name, env: w ? envOf(w) : undefined }).toEqual({ name: spec.name, env: expect.objectContaining(settings) });
    }
  });

  test('When KEDA scales the orchestrator, then it reads the lag of the orchestrator’s results group on the results topic, from 2 pods up to the partition count', () => {
    expect(scaledObjects).toHaveLength(1);
    const [scaler] = scaledObjects;
    const orchestrator = deployments.find((w) => programOf(w).script === 'orchestrator/main.ts');
    if (!scaler || !orchestrator) throw new Error('no ScaledObject or orchestrator Deployment');
    const env = envOf(orchestrator);
    const config = loadOrchestratorConfig(env);
    expect(scaler.spec.scaleTargetRef.name).toBe(orchestrator.metadata.name);
    expect(scaler.spec.minReplicaCount).toBeGreaterThanOrEqual(2);
    expect(scaler.spec.maxReplicaCount).toBe(config.PAYMENT_PARTITIONS);
    expect(orchestrator.spec.replicas).toBeUndefined();
    const [trigger] = scaler.spec.triggers;
    expect(trigger?.type).toBe('kafka');
    expect(trigger?.metadata).toMatchObject({
      // orchestrator/main.ts: the results consumer's group is `${TOPIC_PREFIX}orchestrator`.
      consumerGroup: `${config.TOPIC_PREFIX}orchestrator`,
      topic: topicNames(config.TOPIC_PREFIX).gatewayResults,
      allowIdleConsumers: 'false',
    });
    const fromEnv = trigger?.metadata.bootstrapServersFromEnv;
    expect(fromEnv === undefined ? trigger?.metadata.bootstrapServers : env[fromEnv]).toBe(config.KAFKA_BROKERS.join(','));
    // A node drain must be able to evict an orchestrator while the rest keep the group going.
    const budget = budgets.find((entry) => entry.metadata.name === orchestrator.metadata.name);
    expect(budget?.spec.maxUnavailable).toBeLessThan(scaler.spec.minReplicaCount);
  });

  test('When pods are sized, then requests cover the benchmarks’ average CPU and memory per process, and memory limits their peak', () => {
    const sized = [
      { workload: 'orchestrator', processes: ['orchestrator'] },
      ...gatewayIds.map((id) => ({ workload: `gateway-${id}`, processes: [`gateway-${id}`] })),
    ];
    for (const { workload: name, processes } of sized) {
      const runs = measured.filter((entry) => processes.includes(entry.name));
      expect({ name, measured: runs.length > 0 }).toEqual({ name, measured: true });
      const w = deployments.find((entry) => entry.metadata.name === name);
      if (!w) throw new Error(`no Deployment ${name}`);
      const { requests, limits } = containerOf(w).resources;
      const cpuAvgMillicores = Math.max(...runs.map((run) => run.cpuAvgPercent * 10));
      const rssAvg = Math.max(...runs.map((run) => run.rssAvgMB));
      const rssPeak = Math.max(...runs.map((run) => run.rssPeakMB));
      expect({ name, cpu: millicores(requests.cpu) >= cpuAvgMillicores, memory: mebibytes(requests.memory) >= rssAvg, limit: mebibytes(limits.memory) >= rssPeak }).toEqual({
        name,
        cpu: true,
        memory: true,
        limit: true,
      });
    }
  });

  test('When docs/deployment.md quotes a workload’s requests and memory limit, then they are the manifest’s', () => {
    const rows = documentedSizes();
    expect(rows.map((row) => row.process).sort()).toEqual(Object.values(SIZING_ROW_OF).sort());
    for (const w of workloads) {
      const row = rows.find((entry) => entry.process === SIZING_ROW_OF[programOf(w).script]);
      const { requests, limits } = containerOf(w).resources;
      // The doc writes "900m CPU, 288 Mi": compare quantities, so 0.9 and 900m, or 1Gi and 1024 Mi, are the same.
      const [cpu = '', memory = ''] = (row?.request ?? '').split(/ CPU, /);
      const documented = row && { cpu: millicores(cpu), memory: mebibytes(memory.replace(' ', '')), limit: mebibytes(row.limit.replace(' ', '')) };
      expect({ name: w.metadata.name, documented }).toEqual({
        name: w.metadata.name,
        documented: { cpu: millicores(requests.cpu), memory: mebibytes(requests.memory), limit: mebibytes(limits.memory) },
      });
    }
  });
});
