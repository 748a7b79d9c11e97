/**
 * The sum of a metric's series on a service's /metrics (Prometheus text),
 * over the series whose labels include every one given: e.g. failovers away
 * from one gateway for one cause. 0 when no series matches.
 */
export async function scrapeMetric(baseUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const wanted = Object.entries(labels).map(([label, value]) => `${label}="${value}"`);
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .filter((line) => wanted.every((pair) => line.includes(pair)))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Every sample on a service's /metrics (Prometheus text format, label values without escaped quotes). */
export async function scrapeSamples(baseUrl: string): Promise<MetricSample[]> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const samples: MetricSample[] = [];
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)) labels[pair[1] ?? ''] = pair[2] ?? '';
    samples.push({ name: match[1] ?? '', labels, value: Number(match[3]) });
  }
  return samples;
}

/** The sum of a metric over the samples whose labels include every one given. */
export const sumSamples = (samples: readonly MetricSample[], name: string, labels: Record<string, string> = {}) =>
  samples.filter((s) => s.name === name && Object.entries(labels).every(([label, value]) => s.labels[label] === value)).reduce((sum, s) => sum + s.value, 0);
