import { Registry, collectDefaultMetrics } from 'prom-client';

/** One registry per service instance (tests run several in one process). */
export function createMetricsRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}
