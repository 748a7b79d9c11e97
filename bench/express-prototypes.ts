/**
 * What an HTTP request costs the server's CPU, by how express meets Node's request and response objects
 * (docs/benchmarks/efficiency.md, session 9):
 *
 * - plain Node: `http.createServer(handler)`, no express, the floor;
 * - express, prototype changed: `http.createServer(app)`, as express documents it; `app.handle` gives each request
 *   and response the app's prototype with `Object.setPrototypeOf`;
 * - express, born with the app's prototypes: `serverFor(app)` (runtime/http.ts), which every service listens with.
 *
 * Both express forms run the same app: `createHttpApp`'s middleware chain (request metrics, header bound, health
 * routes, draining, JSON body with the duplicate-key check) and a route answering 202 with a payment-shaped body one
 * event-loop turn later, as the orchestrator's does after its Redis write.
 *
 *   npx tsx bench/express-prototypes.ts
 *
 * Each server runs in a child process of its own, loaded by 128 keep-alive connections from this one; prints CPU
 * microseconds per request (user + system, from process.cpuUsage) over 10 s after 4 s of warm-up, each form twice,
 * alternated. Compare them as ratios: the machine is shared.
 */
import { fork } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { Registry } from 'prom-client';
import { Pool } from 'undici';
import { createHttpApp, serverFor } from '../runtime/http';
import { createLogger } from '../runtime/logger';

const CONNECTIONS = 128;
const WARMUP_MS = 4_000;
const MEASURE_MS = 10_000;

const forms = {
  'plain Node': 'plain',
  'express, prototype changed per request': 'express-changed',
  "express, born with the app's prototypes (serverFor)": 'express-born',
} as const;
type Form = (typeof forms)[keyof typeof forms];

const answer = (n: number) => {
  const now = new Date().toISOString();
  return { id: `p-${n}`, type: 'deposit', accountId: 'acc-1', amount: '12345', currency: 'EUR', region: 'EU', status: 'PENDING', createdAt: now, updatedAt: now };
};
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

function serve(form: Form): Server {
  let served = 0;
  if (form === 'plain') {
    return createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        JSON.parse(Buffer.concat(chunks).toString('utf8'));
        void nextTurn().then(() => {
          const text = JSON.stringify(answer(++served));
          res.writeHead(202, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), location: `/v1/payments/p-${served}` });
          res.end(text);
        });
      });
    });
  }
  const app = createHttpApp({ logger: createLogger('bench', 'silent'), registry: new Registry(), isReady: () => true, isDraining: () => false }, (routes) => {
    routes.post('/v1/payments', async (_req, res) => {
      await nextTurn();
      res.status(202).location(`/v1/payments/p-${++served}`).json(answer(served));
    });
  });
  return form === 'express-born' ? serverFor(app) : createServer(app);
}

/** In the child: serve, and answer the parent's "mark" and "read" with the CPU used since the mark. */
function runServer(form: Form): void {
  const server = serve(form);
  let mark = process.cpuUsage();
  let requests = 0;
  server.on('request', () => requests++);
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    process.send?.({ port: typeof address === 'object' && address ? address.port : 0 });
  });
  process.on('message', (message: string) => {
    if (message === 'mark') {
      mark = process.cpuUsage();
      requests = 0;
    } else {
      const used = process.cpuUsage(mark);
      process.send?.({ cpuUs: used.user + used.system, requests });
    }
  });
}

async function measure(form: Form): Promise<{ perSecond: number; cpuUsPerRequest: number }> {
  const child = fork(__filename, ['serve', form]);
  const ask = <T>(message?: string) =>
    new Promise<T>((resolve) => {
      child.once('message', (answer) => resolve(answer as T));
      if (message) child.send(message);
    });
  const { port } = await ask<{ port: number }>();
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: CONNECTIONS });
  const body = JSON.stringify({ type: 'deposit', accountId: 'acc-1', amount: '12345', currency: 'EUR', region: 'EU' });
  let running = true;
  const connection = async () => {
    while (running) {
      const response = await pool.request({ path: '/v1/payments', method: 'POST', headers: { 'content-type': 'application/json' }, body });
      await response.body.text();
    }
  };
  const connections = Array.from({ length: CONNECTIONS }, connection);
  await new Promise((resolve) => setTimeout(resolve, WARMUP_MS));
  child.send('mark');
  await new Promise((resolve) => setTimeout(resolve, MEASURE_MS));
  const { cpuUs, requests } = await ask<{ cpuUs: number; requests: number }>('read');
  running = false;
  await Promise.all(connections);
  await pool.close();
  child.kill();
  return { perSecond: requests / (MEASURE_MS / 1000), cpuUsPerRequest: cpuUs / requests };
}

async function main(): Promise<void> {
  console.log('| server | requests/s | CPU µs per request |\n| --- | --- | --- |');
  for (let round = 0; round < 2; round++) {
    for (const [name, form] of Object.entries(forms)) {
      const { perSecond, cpuUsPerRequest } = await measure(form);
      console.log(`| ${name} | ${perSecond.toFixed(0)} | ${cpuUsPerRequest.toFixed(1)} |`);
    }
  }
}

if (process.argv[2] === 'serve') runServer(process.argv[3] as Form);
else
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
