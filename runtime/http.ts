import type { Server } from 'node:http';
import express, { type ErrorRequestHandler, type Express, type RequestHandler } from 'express';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { z } from 'zod';
import type { Logger } from './logger';
import { AppError } from './errors';

/** The one error shape every service answers with. */
export interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

export interface HttpOptions {
  logger: Logger;
  registry: Registry;
  /** Ready means every dependency answers; a load balancer only sends work to ready instances. */
  isReady: () => boolean;
  isDraining: () => boolean;
  bodyLimit?: string;
}

/**
 * An express app with what every service needs: JSON bodies with a size limit,
 * liveness and readiness, Prometheus metrics, request metrics, 503 while
 * draining, and one error handler. Services add their routes with `routes`.
 */
export function createHttpApp(options: HttpOptions, routes: (app: Express) => void): Express {
  const { logger, registry } = options;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  const requests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests by method, route and status',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration in seconds, by method and route',
    labelNames: ['method', 'route'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const measure: RequestHandler = (req, res, next) => {
    const end = duration.startTimer();
    res.on('finish', () => {
      // The matched route pattern, not the URL, keeps the label set bounded.
      const route = (req.route as { path?: string } | undefined)?.path ?? 'unmatched';
      const labels = { method: req.method, route: `${req.baseUrl}${route}` };
      end(labels);
      requests.inc({ ...labels, status: String(res.statusCode) });
    });
    next();
  };
  app.use(measure);

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', (_req, res) => {
    const ready = options.isReady() && !options.isDraining();
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready' });
  });
  app.get('/metrics', async (_req, res) => {
    res.type(registry.contentType).send(await registry.metrics());
  });

  const refuseWhileDraining: RequestHandler = (_req, res, next) => {
    if (!options.isDraining()) return next();
    res.set('Retry-After', '1');
    res.status(503).json(errorBody('draining', 'this instance is shutting down; retry on another'));
  };
  app.use(refuseWhileDraining);
  app.use(express.json({ limit: options.bodyLimit ?? '16kb', strict: true }));

  routes(app);

  app.use((_req, res) => {
    res.status(404).json(errorBody('not_found', 'no such route'));
  });
  const handleError: ErrorRequestHandler = (error: unknown, req, res, _next) => {
    const known = toAppError(error);
    if (known) {
      if (known.retryAfterSeconds !== undefined) res.set('Retry-After', String(known.retryAfterSeconds));
      res.status(known.status).json(errorBody(known.code, known.message, known.field));
      return;
    }
    logger.error({ err: error, method: req.method, path: req.path }, 'unhandled error in request');
    res.status(500).json(errorBody('internal', 'internal error'));
  };
  app.use(handleError);
  return app;
}

export function errorBody(code: string, message: string, field?: string): ErrorBody {
  return { error: { code, message, ...(field === undefined ? {} : { field }) } };
}

/** Maps our own errors and body-parser's (too large, bad JSON) to a 4xx. */
function toAppError(error: unknown): AppError | undefined {
  if (error instanceof AppError) return error;
  if (typeof error !== 'object' || error === null) return undefined;
  const { type, status } = error as { type?: string; status?: number };
  if (type === 'entity.too.large') return new AppError(413, 'body_too_large', 'request body is too large', 'body');
  if (type === 'entity.parse.failed') return new AppError(400, 'malformed_json', 'request body is not valid JSON', 'body');
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new AppError(status, 'bad_request', 'request could not be read', 'body');
  }
  return undefined;
}

/** Listens on the port (0 picks a free one) and resolves with the bound port and a closer. */
export function listen(app: Express, port: number, host = '0.0.0.0'): Promise<{ port: number; close: () => Promise<void> }> {
  return new Promise((resolve, reject) => {
    const server: Server = app.listen(port, host, () => {
      const address = server.address();
      const boundPort = typeof address === 'object' && address ? address.port : port;
      resolve({
        port: boundPort,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeIdleConnections();
          }),
      });
    });
    server.once('error', reject);
  });
}

/** Parses with a zod schema, or throws a 400 naming the first field at fault (`field` overrides the path, e.g. for a header). */
export function parseOr400<S extends z.ZodType>(schema: S, value: unknown, field?: string): z.infer<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const path = issue?.code === 'unrecognized_keys' ? issue.keys.join(',') : (issue?.path.join('.') ?? '');
  const named = field ?? (path || 'body');
  throw new AppError(400, 'invalid_request', `${named}: ${issue?.message ?? 'invalid'}`, named);
}
