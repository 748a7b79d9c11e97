import { createServer, IncomingMessage, ServerResponse, STATUS_CODES, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import express, { type ErrorRequestHandler, type Express, type RequestHandler } from 'express';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { z } from 'zod';
import type { Logger } from './logger';
import { AppError } from './errors';
import { NotReplicatedError } from './redis';

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
  /**
   * Handlers that answer before the body is read and parsed (the orchestrator's admission control, which must
   * refuse the excess cheaply); they call next() to go on to body parsing and the routes.
   */
  beforeBody?: (app: Express) => void;
}

/**
 * The largest header set (request line and header fields) answered normally, in bytes: Node's own default, kept.
 * The server parses up to four times more (SERVER_MAX_HEADER_BYTES) so that a request over this size still reaches
 * express and is refused with the documented error shape and counted in the request metrics; only a header set
 * past that bound is refused by Node's parser, and `listen` answers that one in the same shape (see clientError).
 */
export const MAX_HEADER_BYTES = 16 * 1024;
const SERVER_MAX_HEADER_BYTES = 4 * MAX_HEADER_BYTES;

type RequestLabels = { method: string; route: string; status: string };
/** The request counter of each app, for refusals answered by the HTTP server before express ran (in `listen`). */
const requestCounters = new WeakMap<Express, (labels: RequestLabels) => void>();

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
      requests.inc({ method: labels.method, route: labels.route, status: String(res.statusCode) });
    });
    next();
  };
  app.use(measure);
  requestCounters.set(app, (labels) => requests.inc(labels));

  const refuseOversizedHeaders: RequestHandler = (req, res, next) => {
    // As Node counts it: the request line plus every "name: value" line with its CRLF.
    const size = req.rawHeaders.reduce((total, part) => total + part.length + 2, req.method.length + req.url.length + 12);
    if (size <= MAX_HEADER_BYTES) return next();
    res.set('Connection', 'close');
    res.status(431).json(errorBody('headers_too_large', `request headers are too large: at most ${MAX_HEADER_BYTES} bytes`, 'headers'));
  };
  app.use(refuseOversizedHeaders);

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
  options.beforeBody?.(app);
  app.use(express.json({ limit: options.bodyLimit ?? '16kb', strict: true, verify: refuseDuplicateKeys }));

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

/**
 * How long a client waits before sending a write again whose storage the replicas did not confirm: a failover takes
 * seconds, and the retry, with the same Idempotency-Key, either finds the payment stored or stores it anew.
 */
const STORAGE_UNCONFIRMED_RETRY_AFTER_S = 1;

/** Maps our own errors, body-parser's (too large, bad JSON) and a write the Redis replicas did not confirm to an answer. */
function toAppError(error: unknown): AppError | undefined {
  if (error instanceof AppError) return error;
  if (error instanceof NotReplicatedError) {
    return new AppError(
      503,
      'storage_unconfirmed',
      'the request could not be confirmed as stored on a replica; send it again with the same Idempotency-Key',
      undefined,
      STORAGE_UNCONFIRMED_RETRY_AFTER_S,
    );
  }
  if (typeof error !== 'object' || error === null) return undefined;
  const { type, status } = error as { type?: string; status?: number };
  if (type === 'entity.too.large') return new AppError(413, 'body_too_large', 'request body is too large', 'body');
  if (type === 'entity.parse.failed') return new AppError(400, 'malformed_json', 'request body is not valid JSON', 'body');
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new AppError(status, 'bad_request', 'request could not be read', 'body');
  }
  return undefined;
}

/**
 * JSON.parse keeps the last of two equal keys, so `"amount":"99999","amount":"10000"` would be read as 10000 while a
 * proxy, a log or a signature check upstream may have read 99999: such a body is refused, naming the key. Runs as
 * express.json's `verify`, on the raw text before it is parsed.
 */
const refuseDuplicateKeys = (_req: unknown, _res: unknown, buffer: Buffer, encoding: string): void => {
  const duplicate = firstDuplicateKey(buffer.toString(Buffer.isEncoding(encoding) ? encoding : 'utf8'));
  // body-parser keeps the status of an error thrown here, so this reaches the error handler as our own 400.
  if (duplicate !== undefined) throw new AppError(400, 'invalid_request', `${duplicate}: duplicated key; send each field once`, duplicate);
};

// The characters the scan below looks for, as the character codes it compares.
const [QUOTE, BACKSLASH, OPEN_OBJECT, CLOSE_OBJECT, OPEN_ARRAY, CLOSE_ARRAY, COMMA] = [...'"\\{}[],'].map((char) => char.charCodeAt(0));

/**
 * The path ("amount", "rule.currencies" or "items.2.id") of the first key that appears twice in one JSON object, or
 * undefined. Text that is not JSON gives undefined or a meaningless path at worst: JSON.parse refuses it next.
 */
export function firstDuplicateKey(text: string): string | undefined {
  // One frame per open object or array: the keys seen so far (objects) and where the current value sits.
  const stack: Array<{ keys: Set<string> | undefined; at: string }> = [];
  let expectingKey = false;
  // Compared as character codes, and a key is decoded by JSON.parse only when it holds an escape: every request body
  // goes through this scan, and most keys are plain.
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i);
    if (char === QUOTE) {
      let end = i + 1;
      let escaped = false;
      for (let code = text.charCodeAt(end); end < text.length && code !== QUOTE; code = text.charCodeAt(end)) {
        if (code === BACKSLASH) escaped = true;
        end += code === BACKSLASH ? 2 : 1;
      }
      const top = stack.at(-1);
      if (top?.keys && expectingKey) {
        let key: string;
        try {
          key = escaped ? (JSON.parse(text.slice(i, end + 1)) as string) : text.slice(i + 1, end);
        } catch {
          return undefined;
        }
        if (top.keys.has(key)) return [...stack.slice(0, -1).map((frame) => frame.at), key].join('.');
        top.keys.add(key);
        top.at = key;
        expectingKey = false;
      }
      i = end;
    } else if (char === OPEN_OBJECT) {
      stack.push({ keys: new Set(), at: '' });
      expectingKey = true;
    } else if (char === OPEN_ARRAY) {
      stack.push({ keys: undefined, at: '0' });
      expectingKey = false;
    } else if (char === CLOSE_OBJECT || char === CLOSE_ARRAY) {
      stack.pop();
      expectingKey = false;
    } else if (char === COMMA) {
      const top = stack.at(-1);
      if (top?.keys) expectingKey = true;
      else if (top) top.at = String(Number(top.at) + 1);
    }
  }
  return undefined;
}

/**
 * What Node's HTTP parser refuses before express sees the request (a header set over SERVER_MAX_HEADER_BYTES,
 * a malformed request line, a request that took too long to arrive) is answered here in the documented error
 * shape and counted like any other request, instead of Node's bare status line.
 */
function answerClientError(app: Express, error: NodeJS.ErrnoException, socket: Duplex): void {
  const inProgress = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (!socket.writable || error.code === 'ECONNRESET' || inProgress?.headersSent) {
    socket.destroy();
    return;
  }
  const [status, body] =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? [431, errorBody('headers_too_large', `request headers are too large: at most ${MAX_HEADER_BYTES} bytes`, 'headers')]
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, errorBody('request_timeout', 'the request did not arrive in time')]
        : [400, errorBody('bad_request', 'request could not be read')];
  const text = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
  );
  // The parser stopped before the method and path were known.
  requestCounters.get(app)?.({ method: 'unknown', route: 'unmatched', status: String(status) });
}

/** The options that give Node's HTTP server the classes it builds requests and responses with. */
type MessageClasses = { IncomingMessage: typeof IncomingMessage; ServerResponse: typeof ServerResponse };
const messageClasses = new WeakMap<Express, MessageClasses>();

/**
 * The classes Node's server builds an app's requests and responses with, and the app's prototypes made theirs.
 *
 * Why: express gives every request and response its app's prototype (`app.request`, `app.response`) with
 * `Object.setPrototypeOf` (application.js, `app.handle`). Changing a live object's prototype moves it to a fresh
 * hidden class, so every property access on it, in express and in Node's own HTTP and stream code, misses its inline
 * cache and is looked up the slow way. Here the app's prototypes become these subclasses' (each inheriting the app's
 * former one, so every express helper and `req.app` stay): the objects are born with them, and the call changes
 * nothing. Subclasses rather than plain constructor functions, because V8 sizes a class instance for the properties
 * its whole constructor chain adds; a plain function's instance got too few in-object slots and Node's constructor
 * turned it into a slow dictionary object. Measured on `createHttpApp`'s middleware chain
 * (`npx tsx bench/express-prototypes.ts`). The pattern is expressjs/express#5998, the cost nodejs/node#37457.
 */
function messageClassesOf(app: Express): MessageClasses {
  const known = messageClasses.get(app);
  if (known) return known;
  class AppRequest extends IncomingMessage {}
  class AppResponse extends ServerResponse {}
  Object.setPrototypeOf(AppRequest.prototype, app.request);
  Object.setPrototypeOf(AppResponse.prototype, app.response);
  app.request = AppRequest.prototype as unknown as Express['request'];
  app.response = AppResponse.prototype as unknown as Express['response'];
  // A subclass of ServerResponse loses the generic constructor signature TypeScript declares for Node's own.
  const classes = { IncomingMessage: AppRequest, ServerResponse: AppResponse as unknown as typeof ServerResponse };
  messageClasses.set(app, classes);
  return classes;
}
/**
 * The server for an app: Node's HTTP server building requests and responses with the app's prototypes already in
 * place (see `messageClassesOf`), and the larger header bound under which an oversized header set still reaches
 * express.
 */
export function serverFor(app: Express): Server {
  return createServer({ maxHeaderSize: SERVER_MAX_HEADER_BYTES, ...messageClassesOf(app) }, app);
}

/** Listens on the port (0 picks a free one) and resolves with the bound port and a closer. */
export function listen(app: Express, port: number, host = '0.0.0.0'): Promise<{ port: number; close: () => Promise<void> }> {
  return new Promise((resolve, reject) => {
    const server = serverFor(app);
    server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => answerClientError(app, error, socket));
    server.listen(port, host, () => {
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
