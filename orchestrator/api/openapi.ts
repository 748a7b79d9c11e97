import path from 'node:path';
import { OpenAPIRegistry, OpenApiGeneratorV31, type ResponseConfig, type RouteConfig } from '@asteasolutions/zod-to-openapi';
import express, { type Express } from 'express';
import { z } from 'zod';
import { ids } from '../../topics/envelope';
import packageJson from '../../package.json';
import { CURRENCIES, idempotencyKey, listQuery, paymentRequest, preferWait } from './payment-request';
import { errorBody, paymentPage, paymentView, reviewList, routingView } from './views';

/** The OpenAPI document type, as the generator declares it (openapi3-ts's 3.1 model). */
export type OpenAPIObject = ReturnType<OpenApiGeneratorV31['generateDocument']>;

const BEARER = 'bearerAuth';
const WRITE = 'payments:write';
const READ = 'payments:read';

// ---- Request parts ------------------------------------------------------------------------------------------------

/**
 * The POST body as validated by `paymentRequest`, with the currency spelled out
 * as an enum and the per-currency amount bounds in the descriptions: the schema
 * checks both with refinements, which JSON Schema cannot show.
 */
const currencies = Object.entries(CURRENCIES);
const paymentRequestBody = z
  .strictObject({
    ...paymentRequest.shape,
    accountId: paymentRequest.shape.accountId.meta({ description: "The platform's account: 1-64 letters, digits and . _ : -" }),
    amount: paymentRequest.shape.amount.meta({
      description:
        'Integer minor units as a JSON string of digits, no leading zero ("10000" is 100.00 EUR); a JSON number is refused. ' +
        `Bounds per currency, in minor units: ${currencies.map(([code, { min, max }]) => `${code} ${min}-${max}`).join(', ')}.`,
    }),
    currency: paymentRequest.shape.currency.meta({
      enum: currencies.map(([code]) => code),
      description: `ISO 4217 code. Minor units: ${currencies.map(([code, { minorUnits }]) => `${code} ${minorUnits}`).join(', ')}.`,
    }),
  })
  .meta({
    id: 'PaymentRequest',
    description: 'A payment to make. Unknown fields are refused; any invalid field is answered 400 naming it in `field`.',
  });

const paymentRequestExamples = {
  deposit: {
    summary: 'Deposit of 100.00 EUR',
    value: { type: 'deposit', accountId: 'acc-42', amount: '10000', currency: 'EUR', region: 'EU' },
  },
  withdrawal: {
    summary: 'Withdrawal of 25.00 USD',
    value: { type: 'withdrawal', accountId: 'acc-42', amount: '2500', currency: 'USD', region: 'US' },
  },
  yen: {
    summary: 'Deposit of 5000 JPY (no minor unit)',
    value: { type: 'deposit', accountId: 'acc-7', amount: '5000', currency: 'JPY', region: 'APAC' },
  },
};

const createHeaders = z.object({
  'Idempotency-Key': idempotencyKey.meta({
    description:
      '1-100 letters, digits and . _ : -. The same key with the same body returns the same payment (also under concurrent duplicates); ' +
      'with another body it is refused with 422 idempotency_conflict.',
    example: 'order-7731-withdrawal',
  }),
  Prefer: preferWait.optional().meta({
    description:
      '`wait=N` (RFC 7240): hold the answer up to N seconds (capped by the server, 30 by default) for a terminal status. ' +
      'Anything else is a 400 naming `Prefer`.',
    example: 'wait=10',
  }),
});

const paymentIdParams = z.object({
  id: ids.paymentId.meta({ description: 'The payment id, as in the body and the Location header', example: '4f621f2f-5d18-465c-bed0-15d5949616da' }),
});

const listParameters = z.strictObject({
  ...listQuery.shape,
  accountId: listQuery.shape.accountId.meta({ description: 'The account whose payments to list', example: 'acc-42' }),
  status: listQuery.shape.status.meta({ description: 'Only payments in this status' }),
  // Documented as the integer it is; the parser (listQuery) also refuses any spelling but plain digits (`1e1`, `0x10`).
  limit: z.int().min(1).max(100).default(50).meta({ description: 'Page size, 1-100, written in plain digits (`1e1` or `0x10` are refused)', example: 20 }),
  cursor: listQuery.shape.cursor.meta({ description: 'The `nextCursor` of the previous page (opaque)' }),
});

// ---- Responses ----------------------------------------------------------------------------------------------------

type ErrorExample = [code: string, message: string, field?: string];

/** A response with the error body and one named example per error code. */
function errorResponse(description: string, ...examples: ErrorExample[]): ResponseConfig {
  return {
    description,
    content: {
      'application/json': {
        schema: errorBody,
        examples: Object.fromEntries(
          examples.map(([code, message, field], index) => [
            // Named by the code; a second example of the same code gets a suffix.
            examples.findIndex(([other]) => other === code) === index ? code : `${code}_${index + 1}`,
            { summary: message, value: { error: { code, message, ...(field === undefined ? {} : { field }) } } },
          ]),
        ),
      },
    },
  };
}

const json = (schema: z.ZodType, description: string): ResponseConfig => ({ description, content: { 'application/json': { schema } } });

const retryAfter = z.object({ 'Retry-After': z.string().meta({ description: 'Seconds after which a retry may succeed', example: '1' }) });
const paymentHeaders = z.object({
  Location: z.string().meta({ description: 'The payment: /v1/payments/{id}', example: '/v1/payments/4f621f2f-5d18-465c-bed0-15d5949616da' }),
  'Preference-Applied': z.string().optional().meta({ description: 'Present when the answer waited (Prefer: wait), with the wait applied', example: 'wait=10' }),
});

/** 401 and 403: checked before anything else the operation does. */
const secured = (scope: string) => ({
  401: errorResponse(
    'No bearer token, or one that is not valid (signature, issuer, expiry)',
    ['unauthorized', 'a bearer token is required', 'Authorization'],
    ['unauthorized', 'the token has expired', 'Authorization'],
  ),
  403: errorResponse(`The token's \`scope\` claim lacks ${scope}`, ['forbidden', `this operation needs the ${scope} scope`, 'Authorization']),
});
const draining: ResponseConfig = {
  ...errorResponse('This instance is shutting down; retry on another', ['draining', 'this instance is shutting down; retry on another']),
  headers: retryAfter,
};
/** Any route: the request line and headers together are over 16 kB (MAX_HEADER_BYTES). */
const headersTooLarge = errorResponse('The request line and headers are over 16 kB', [
  'headers_too_large',
  'request headers are too large: at most 16384 bytes',
  'headers',
]);
const badQuery = (...examples: ErrorExample[]) => errorResponse('Invalid input; `field` names the part at fault', ...examples);

const requires = (scope: string) => ({ security: [{ [BEARER]: [scope] }] });
const scopeNote = (scope: string) => `\n\nRequires a bearer JWT whose \`scope\` claim includes \`${scope}\`.`;

// ---- Routes -------------------------------------------------------------------------------------------------------

const routes: RouteConfig[] = [
  {
    method: 'post',
    path: '/v1/payments',
    operationId: 'createPayment',
    tags: ['payments'],
    summary: 'Accept a payment',
    description:
      'Validates the payment, picks its first gateway by the routing rules, stores it PENDING with its first attempt and dispatches it. ' +
      'Without `Prefer` the answer is 202 with the payment as it stands, also for a repeated Idempotency-Key with the same body (the same answer). ' +
      'With `Prefer: wait=N` the answer is held up to N seconds for a terminal status (`Preference-Applied` says so): 200 if it is SUCCESS or FAILURE, else 202. ' +
      'Either way `Location` names the payment to poll.' +
      scopeNote(WRITE),
    ...requires(WRITE),
    request: {
      headers: createHeaders,
      body: { required: true, content: { 'application/json': { schema: paymentRequestBody, examples: paymentRequestExamples } } },
    },
    responses: {
      200: {
        ...json(paymentView, 'With Prefer: wait only: the payment reached SUCCESS or FAILURE within the wait'),
        headers: paymentHeaders,
      },
      202: { ...json(paymentView, 'Accepted: the payment as it stands (PENDING unless a repeated key finds it settled); with Prefer: wait, still PENDING when the wait ran out'), headers: paymentHeaders },
      400: badQuery(
        ['invalid_request', 'amount: between 100 and 100000000 minor units of EUR', 'amount'],
        ['invalid_request', 'Idempotency-Key: required header', 'Idempotency-Key'],
        ['invalid_request', 'Idempotency-Key: too long: at most 100 characters', 'Idempotency-Key'],
        ['invalid_request', 'amount: duplicated key; send each field once', 'amount'],
        ['malformed_json', 'request body is not valid JSON', 'body'],
      ),
      ...secured(WRITE),
      413: errorResponse('The body is over the size limit (16 kB)', ['body_too_large', 'request body is too large', 'body']),
      431: headersTooLarge,
      422: errorResponse(
        'No gateway serves this payment, or the Idempotency-Key was used with another body',
        ['no_gateway', 'no available gateway serves withdrawal in USD for region US', 'region'],
        ['idempotency_conflict', 'this Idempotency-Key was used with a different request', 'Idempotency-Key'],
      ),
      503: {
        ...errorResponse(
          'The orchestrator is behind and takes no new payment now, nothing written (overloaded: a repeated Idempotency-Key of an existing payment is still answered), ' +
            'every gateway that serves the payment is over its rate limit or has an open circuit (gateways_busy), this instance is shutting down (draining), ' +
            'or the write was not confirmed on a Redis replica in time (storage_unconfirmed: send the same request again, with the same Idempotency-Key)',
          ['overloaded', 'the orchestrator is behind (results-backlog 2400 ms, over 2000 ms); retry after 3 s'],
          ['gateways_busy', 'every gateway serving region US is over its rate limit or has an open circuit; retry shortly', 'region'],
          ['draining', 'this instance is shutting down; retry on another'],
          ['storage_unconfirmed', 'the request could not be confirmed as stored on a replica; send it again with the same Idempotency-Key'],
        ),
        headers: retryAfter,
      },
    },
  },
  {
    method: 'get',
    path: '/v1/payments/{id}',
    operationId: 'getPayment',
    tags: ['payments'],
    summary: 'A payment in its current state',
    description: 'The payment with every attempt and the routing explanation of each.' + scopeNote(READ),
    ...requires(READ),
    request: { params: paymentIdParams },
    responses: {
      200: json(paymentView, 'The payment'),
      ...secured(READ),
      404: errorResponse('No payment with this id', ['not_found', 'no payment 4f621f2f-5d18-465c-bed0-15d5949616da', 'id']),
      503: draining,
    },
  },
  {
    method: 'get',
    path: '/v1/payments',
    operationId: 'listPayments',
    tags: ['payments'],
    summary: "An account's payments, newest first",
    description: 'Pages through the payments of one account, optionally in one status. Follow `nextCursor` until it is absent.' + scopeNote(READ),
    ...requires(READ),
    request: { query: listParameters },
    responses: {
      200: json(paymentPage, 'One page, newest first'),
      400: badQuery(
        ['invalid_request', 'accountId: Invalid input: expected string, received undefined', 'accountId'],
        ['invalid_request', 'limit: Too big: expected number to be <=100', 'limit'],
        ['invalid_request', 'limit: a whole number 1-100, digits only', 'limit'],
      ),
      ...secured(READ),
      503: draining,
    },
  },
  {
    method: 'get',
    path: '/v1/reviews',
    operationId: 'listReviews',
    tags: ['payments'],
    summary: 'Payments flagged for review',
    description:
      'Withdrawals left PENDING because a gateway timed out and never confirmed the cancel: whether money moved is unknown, so a person decides.' +
      scopeNote(READ),
    ...requires(READ),
    responses: { 200: json(reviewList, 'The flagged payments'), ...secured(READ), 503: draining },
  },
  {
    method: 'get',
    path: '/v1/routing',
    operationId: 'getRouting',
    tags: ['operations'],
    summary: "This instance's routing view",
    description: 'The rules in force with their version, and per gateway its breaker state and effective (health-aware) weight.' + scopeNote(READ),
    ...requires(READ),
    responses: { 200: json(routingView, 'The routing view of the instance that answered'), ...secured(READ), 503: draining },
  },
  {
    method: 'get',
    path: '/healthz',
    operationId: 'healthz',
    tags: ['operations'],
    summary: 'Liveness',
    description: 'The process answers. No authentication.',
    security: [],
    responses: { 200: json(z.object({ status: z.literal('ok') }), 'Alive') },
  },
  {
    method: 'get',
    path: '/readyz',
    operationId: 'readyz',
    tags: ['operations'],
    summary: 'Readiness',
    description: 'Every dependency (Redis, Kafka consumers) answers and the instance is not draining. No authentication.',
    security: [],
    responses: {
      200: json(z.object({ status: z.literal('ready') }), 'Ready for traffic'),
      503: json(z.object({ status: z.literal('not ready') }), 'Not ready, or draining'),
    },
  },
  {
    method: 'get',
    path: '/metrics',
    operationId: 'metrics',
    tags: ['operations'],
    summary: 'Prometheus metrics',
    description: 'Prometheus text exposition format. No authentication.',
    security: [],
    responses: { 200: { description: 'The metrics', content: { 'text/plain': { schema: z.string() } } } },
  },
  {
    method: 'get',
    path: '/openapi.json',
    operationId: 'openapi',
    tags: ['docs'],
    summary: 'This OpenAPI document',
    description: 'No authentication.',
    security: [],
    responses: { 200: { description: 'The OpenAPI 3.1 document', content: { 'application/json': { schema: { type: 'object' } } } } },
  },
  {
    method: 'get',
    path: '/docs',
    operationId: 'docs',
    tags: ['docs'],
    summary: 'Browsable API reference',
    description: 'Swagger UI over /openapi.json, served from this instance (no CDN). No authentication.',
    security: [],
    responses: { 200: { description: 'An HTML page', content: { 'text/html': { schema: z.string() } } } },
  },
];

/** The OpenAPI 3.1 document of the orchestrator's HTTP API, generated from the zod schemas the code uses. */
export function buildOpenApiDocument(): OpenAPIObject {
  const registry = new OpenAPIRegistry();
  registry.registerComponent('securitySchemes', BEARER, {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description:
      'A JWT signed with HS256. Its `scope` claim is a space-separated list: `payments:write` to create payments, `payments:read` to read them. ' +
      'Missing or invalid token: 401 unauthorized; missing scope: 403 forbidden.',
  });
  for (const route of routes) registry.registerPath(route);

  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'Payment gateway orchestrator',
      version: packageJson.version,
      description:
        'Routes deposits and withdrawals to payment gateways over Kafka, with failover, circuit breakers and idempotency. ' +
        'Money is always integer minor units carried as a string of digits. Every error has the shape `{"error":{"code","message","field"?}}`.',
    },
    servers: [{ url: 'http://localhost:8080', description: 'A local orchestrator (PORT, 8080 by default)' }],
    tags: [
      { name: 'payments', description: 'Create and read payments' },
      { name: 'operations', description: 'Health, readiness, metrics and routing state' },
      { name: 'docs', description: 'This reference' },
    ],
  });
}

// ---- Serving ------------------------------------------------------------------------------------------------------

const SWAGGER_UI_DIR = path.dirname(require.resolve('swagger-ui-dist/package.json'));

const DOCS_PAGE = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>Payment gateway orchestrator API</title>
    <link rel="stylesheet" href="/docs/swagger-ui.css" />
    <link rel="stylesheet" href="/docs/index.css" />
    <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="/docs/swagger-ui-bundle.js" charset="utf-8"></script>
    <script src="/docs/swagger-initializer.js" charset="utf-8"></script>
  </body>
</html>
`;

// A script file rather than an inline script, so a strict Content-Security-Policy does not block it.
// validatorUrl null: Swagger UI would otherwise send the document to validator.swagger.io.
const DOCS_INITIALIZER = `window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
  });
};
`;

/**
 * GET /openapi.json and the browsable page at GET /docs (Swagger UI's assets
 * under /docs/, from swagger-ui-dist). No authentication: register these
 * outside any auth middleware.
 */
export function openApiRoutes(app: Express): void {
  const document = buildOpenApiDocument();
  app.get('/openapi.json', (_req, res) => {
    res.json(document);
  });
  app.get('/docs', (_req, res) => {
    res.type('html').send(DOCS_PAGE);
  });
  // Replaces the dist's initializer (which points at the petstore) and its index page.
  app.get('/docs/swagger-initializer.js', (_req, res) => {
    res.type('application/javascript').send(DOCS_INITIALIZER);
  });
  app.get('/docs/index.html', (_req, res) => {
    res.redirect(301, '/docs');
  });
  app.use('/docs', express.static(SWAGGER_UI_DIR, { index: false, fallthrough: true }));
}
