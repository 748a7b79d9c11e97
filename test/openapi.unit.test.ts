import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import SwaggerParser from '@apidevtools/swagger-parser';
import type { Express } from 'express';
import { Registry } from 'prom-client';
import { buildOpenApiDocument, openApiRoutes } from '../orchestrator/api/openapi';
import { paymentRoutes } from '../orchestrator/api/payments';
import { createHttpApp, listen } from '../runtime/http';
import { createLogger } from '../runtime/logger';
import { OPENAPI_FILE, renderOpenApi } from '../scripts/openapi';

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

/** A dependency that route registration must not touch: every use of it throws. */
function unused<T>(name: string): T {
  const fail = () => {
    throw new Error(`fake ${name} was used; registering routes should not need it`);
  };
  // The proxy stands in for a dependency of any shape (object or function); it has none of its members.
  return new Proxy(fail, { get: fail, apply: fail }) as unknown as T;
}

/** The orchestrator's HTTP app with the payment and OpenAPI routes, on fakes that no route registration calls. */
function orchestratorApp(): Express {
  const deps: Parameters<typeof paymentRoutes>[1] = {
    acceptPayment: unused('acceptPayment'),
    store: unused('store'),
    terminalWaits: unused('terminalWaits'),
    verifyToken: unused('verifyToken'),
    maxWaitSeconds: 30,
    routing: unused('routing'),
  };
  return createHttpApp(
    { logger: createLogger('openapi-test', 'silent'), registry: new Registry(), isReady: () => true, isDraining: () => false },
    (app) => {
      paymentRoutes(app, deps);
      openApiRoutes(app);
    },
  );
}

/** "METHOD /path" of every route the app serves, with `:param` written `{param}` as in OpenAPI. */
function expressRoutes(app: Express): string[] {
  const routes = app.router.stack.flatMap((layer) => {
    if (!layer.route) return [];
    const path = layer.route.path.replace(/:(\w+)/g, '{$1}');
    const methods = new Set(layer.route.stack.map((handler) => handler.method.toUpperCase()));
    return [...methods].map((method) => `${method} ${path}`);
  });
  return [...new Set(routes)].sort();
}

function documentedRoutes(document: ReturnType<typeof buildOpenApiDocument>): string[] {
  return Object.entries(document.paths ?? {})
    .flatMap(([path, item]) => METHODS.filter((method) => item[method] !== undefined).map((method) => `${method.toUpperCase()} ${path}`))
    .sort();
}

/** JSON pointers where two JSON values differ (at most `limit`), to say what is stale. */
function differences(left: unknown, right: unknown, at = '', limit = 10): string[] {
  if (isDeepStrictEqual(left, right)) return [];
  const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null;
  if (!isObject(left) || !isObject(right) || Array.isArray(left) !== Array.isArray(right)) return [at || '/'];
  const keys = [...new Set([...Object.keys(left), ...Object.keys(right)])];
  return keys.flatMap((key) => differences(left[key], right[key], `${at}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`, limit)).slice(0, limit);
}

describe('OpenAPI document', () => {
  const document = buildOpenApiDocument();

  it('is a valid OpenAPI 3.1 document', async () => {
    expect(document.openapi).toBe('3.1.0');
    // validate() dereferences in place: give it a copy. Its parameter type is openapi-types' model, not openapi3-ts's.
    const copy = structuredClone(document) as unknown as Exclude<Parameters<typeof SwaggerParser.validate>[0], string>;
    await expect(SwaggerParser.validate(copy)).resolves.toBeDefined();
  });

  it('is what docs/openapi.json holds', () => {
    const committed: unknown = JSON.parse(readFileSync(OPENAPI_FILE, 'utf8'));
    const generated: unknown = JSON.parse(renderOpenApi());
    const stale = differences(committed, generated);
    if (stale.length > 0) {
      throw new Error(`docs/openapi.json is out of date: run \`npm run openapi\` and commit it. Differs at:\n  ${stale.join('\n  ')}`);
    }
  });

  it('documents exactly the routes the orchestrator serves', () => {
    const served = expressRoutes(orchestratorApp()).filter((route) => !/^[A-Z]+ \/docs\/./.test(route));
    expect(documentedRoutes(document)).toEqual(served);
  });

  it('notes the required scope of every secured operation and documents its 401 and 403', () => {
    const problems: string[] = [];
    for (const [path, item] of Object.entries(document.paths ?? {})) {
      for (const method of METHODS) {
        const operation = item[method];
        if (!operation) continue;
        const where = `${method.toUpperCase()} ${path}`;
        const scopes = (operation.security ?? []).flatMap((requirement) => Object.values(requirement).flat());
        const statuses = Object.keys(operation.responses ?? {});
        if (path.startsWith('/v1/') && scopes.length !== 1) problems.push(`${where}: needs exactly one scope, has ${scopes.length}`);
        if (!path.startsWith('/v1/') && operation.security?.length !== 0) problems.push(`${where}: should say security: [] (no auth)`);
        for (const scope of scopes) if (!operation.description?.includes(scope)) problems.push(`${where}: description does not name ${scope}`);
        if (scopes.length > 0 && !(statuses.includes('401') && statuses.includes('403'))) problems.push(`${where}: 401 or 403 missing`);
      }
    }
    expect(problems).toEqual([]);
  });
});

describe('serving the document', () => {
  let server: { port: number; close: () => Promise<void> };
  const url = (path: string) => `http://127.0.0.1:${server.port}${path}`;

  beforeAll(async () => {
    server = await listen(orchestratorApp(), 0, '127.0.0.1');
  });
  afterAll(async () => {
    await server.close();
  });

  // The token verifier is a fake that throws if called: a 200 below also proves no auth is asked.
  it('serves /openapi.json without a token', async () => {
    const response = await fetch(url('/openapi.json'));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await response.json()).toEqual(JSON.parse(JSON.stringify(buildOpenApiDocument())));
  });

  it('serves a Swagger UI page at /docs, with its assets from this server, pointed at /openapi.json', async () => {
    const page = await fetch(url('/docs'));
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await page.text();
    expect(html).toContain('id="swagger-ui"');

    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1] ?? '');
    expect(assets.length).toBeGreaterThanOrEqual(4);
    for (const asset of assets) {
      expect(asset).toMatch(/^\/docs\//); // same origin: no CDN
      const response = await fetch(url(asset));
      expect({ asset, status: response.status }).toEqual({ asset, status: 200 });
      await response.arrayBuffer();
    }
    const initializer = await (await fetch(url('/docs/swagger-initializer.js'))).text();
    expect(initializer).toContain("url: '/openapi.json'");
    expect(initializer).not.toContain('petstore');
  });
});
