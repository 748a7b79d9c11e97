import fc from 'fast-check';
import { z } from 'zod';
import { ruleBody, unavailableBody } from '../../backoffice/api/routes';
import { sandboxSettings } from '../../gateways/sandbox';
import { paymentRequest } from '../../orchestrator/api/payment-request';
import { DEVELOPMENT_SIGNING_KEY, mintToken } from '../../runtime/auth';
import { startChaosStack, type ChaosStack } from '../support/chaos';
import { authHeaders } from '../support/env';
import { messageCount, redisKeyCount } from '../support/inspect';
import { deposit, rule } from '../support/stack';

/** Generated requests per property; fast-check prints the seed and the smallest failing request if one fails. */
const RUNS = 300;
const GATEWAYS = ['alpha', 'beta'];

// --- Generators of bad input -------------------------------------------------

/** Printable ASCII: what fetch lets through in a header value. */
const headerText = fc.string({ maxLength: 80 });
const anyJson = fc.jsonValue({ maxDepth: 3 });
/** Bodies that are rarely JSON objects: arbitrary text (malformed JSON mostly), arbitrary JSON values, or more than the 16 kB limit. */
const rawBody = fc.oneof(
  { arbitrary: fc.string({ unit: 'binary', maxLength: 200 }), weight: 3 },
  { arbitrary: anyJson.map((value) => JSON.stringify(value)), weight: 3 },
  { arbitrary: fc.integer({ min: 16_500, max: 40_000 }).map((size) => JSON.stringify({ accountId: 'a'.repeat(size) })), weight: 1 },
);

/** A valid object with some fields replaced by any JSON value, some removed, and maybe unknown ones added. */
const mutated = (valid: Record<string, unknown>) =>
  fc
    .record({
      replaced: Object.keys(valid).length === 0 ? fc.constant({}) : fc.dictionary(fc.constantFrom(...Object.keys(valid)), anyJson, { maxKeys: 3 }),
      removed: fc.subarray(Object.keys(valid)),
      added: fc.dictionary(fc.string({ maxLength: 12 }), anyJson, { maxKeys: 2 }),
    })
    .map(({ replaced, removed, added }) => {
      const body: Record<string, unknown> = { ...valid, ...replaced };
      for (const field of removed) delete body[field];
      return JSON.stringify({ ...body, ...added });
    });

const acceptedBy = (schema: z.ZodType, text: string) => {
  try {
    // Every route reads an empty body as {} (the JSON parser's choice, kept by `req.body ?? {}`): PUT /sandbox with none means healthy.
    return schema.safeParse(text === '' ? {} : JSON.parse(text)).success;
  } catch {
    return false;
  }
};

/** A JSON body text that the endpoint's own contract refuses: bad input by construction, never valid by chance. */
const badBody = (valid: Record<string, unknown>, schema: z.ZodType) =>
  fc.oneof({ arbitrary: mutated(valid), weight: 3 }, { arbitrary: rawBody, weight: 2 }).filter((text) => !acceptedBy(schema, text));

/** A path segment: anything, percent-encoded, or a malformed percent sequence. */
const segment = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }).map(encodeURIComponent),
  fc.constantFrom('%', '%zz', '%E0%A4%A', '%00', '..', '%2e%2e', '%2F', 'alpha%20', ''),
);

/** A query string: known and unknown names, repeated names, odd values and malformed escapes. */
const query = fc
  .array(
    fc.tuple(
      fc.oneof(fc.constantFrom('accountId', 'status', 'limit', 'cursor'), fc.string({ maxLength: 10 })),
      fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom('PENDING', 'SUCCESS', '0', '101', '-1', '1e3', 'acc-1', '%', '%zz')),
    ),
    { maxLength: 4 },
  )
  .map((pairs) => (pairs.length === 0 ? '' : `?${pairs.map(([name, value]) => `${encodeURIComponent(name)}=${value.includes('%') ? value : encodeURIComponent(value)}`).join('&')}`));

/** The body of POST /v1/gateways/:id/available: an empty object. */
const availableBody = z.strictObject({});

const method = fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE');

/** An Authorization header: mostly the valid one, sometimes garbage or none. */
const authorization = (valid: string) =>
  fc.oneof({ arbitrary: fc.constant<string | undefined>(valid), weight: 6 }, { arbitrary: headerText.map((text) => `Bearer ${text}`), weight: 1 }, { arbitrary: fc.constant(undefined), weight: 1 });

const contentType = fc.oneof(
  { arbitrary: fc.constant('application/json'), weight: 6 },
  { arbitrary: fc.constantFrom('text/plain', 'application/json; charset=utf-16', 'application/x-www-form-urlencoded', 'application/json; charset=latin1'), weight: 1 },
  { arbitrary: headerText, weight: 1 },
);

// --- What every answer must look like ------------------------------------------

interface Sent {
  method: string;
  url: string;
  headers: Record<string, string | undefined>;
  body?: string;
}

async function send({ method: verb, url, headers, body }: Sent): Promise<{ status: number; body: unknown }> {
  const defined = Object.fromEntries(Object.entries(headers).filter((entry): entry is [string, string] => entry[1] !== undefined));
  const response = await fetch(url, { method: verb, headers: defined, ...(body === undefined || verb === 'GET' ? {} : { body }) });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Left as text: the assertion that follows shows it.
  }
  return { status: response.status, body: parsed };
}

/** Never a 5xx; any refusal in the one error shape, naming a field when it has one. */
function expectHandled(answer: { status: number; body: unknown }, request: Sent): void {
  const context = `${request.method} ${request.url} → ${answer.status} ${JSON.stringify(answer.body).slice(0, 300)}`;
  if (answer.status >= 500) throw new Error(`server error: ${context}`);
  if (answer.status >= 400) {
    const error = (answer.body as { error?: { code?: unknown; message?: unknown } }).error;
    if (typeof error?.code !== 'string' || typeof error.message !== 'string') throw new Error(`refusal without the error shape: ${context}`);
  }
}

/** Bad input: a 4xx in the error shape, never a success. */
function expectRefused(answer: { status: number; body: unknown }, request: Sent): void {
  expectHandled(answer, request);
  if (answer.status < 400) throw new Error(`bad input accepted: ${request.method} ${request.url} ${request.body?.slice(0, 300)} → ${answer.status}`);
}

const check = (property: fc.IAsyncProperty<[Sent]>) => fc.assert(property, { numRuns: RUNS });
const refusedProperty = (requests: fc.Arbitrary<Sent>) => fc.asyncProperty(requests, async (request) => expectRefused(await send(request), request));
const handledProperty = (requests: fc.Arbitrary<Sent>) => fc.asyncProperty(requests, async (request) => expectHandled(await send(request), request));

/**
 * Every HTTP endpoint of the orchestrator, the back office and the sandbox
 * gateway, fed generated bad input: never a 5xx, never a crash, nothing
 * written to Redis or Kafka, no setting changed.
 */
describe('chaos: HTTP fuzzing of every endpoint', () => {
  let stack: ChaosStack;
  let orchestrator: string;
  let backoffice: string;
  let sandbox: string;
  let paymentsAuth: string;
  let rulesAuth: string;
  const before = { rules: 0, audit: 0, sandbox: '', gateways: '' };

  /** The rules and their versions as the back office shows them (not breakers or success rates, which move by themselves). */
  const rulesView = async () => {
    const { gateways } = (await (await fetch(`${backoffice}/v1/gateways`, { headers: { authorization: rulesAuth } })).json()) as { gateways: Array<{ gatewayId: string; version: number; rule: unknown }> };
    return JSON.stringify(gateways.map(({ gatewayId, version, rule: gatewayRule }) => ({ gatewayId, version, gatewayRule })));
  };

  beforeAll(async () => {
    stack = await startChaosStack({ rules: GATEWAYS.map((gatewayId) => rule(gatewayId)), backoffice: true });
    orchestrator = stack.baseUrls()[0] ?? '';
    backoffice = stack.backoffice?.baseUrl ?? '';
    sandbox = `http://127.0.0.1:${stack.gateways.get('alpha')?.port}`;
    paymentsAuth = authHeaders().authorization ?? '';
    rulesAuth = `Bearer ${await mintToken({ secret: DEVELOPMENT_SIGNING_KEY, issuer: 'payment-orchestrator' }, 'fuzzer', ['rules:read', 'rules:write'])}`;
    before.rules = await messageCount(stack.kafka, stack.topics.rules);
    before.audit = await messageCount(stack.kafka, stack.topics.audit);
    before.sandbox = await (await fetch(`${sandbox}/sandbox`)).text();
    before.gateways = await rulesView();
  }, 60_000);
  afterAll(() => stack?.stop());

  test('When POST /v1/payments gets generated bad bodies and headers, then it always answers a 4xx in the error shape', async () => {
    await check(
      refusedProperty(
        fc.record({
          method: fc.constant('POST'),
          url: fc.constant(`${orchestrator}/v1/payments`),
          headers: fc.record({
            authorization: authorization(paymentsAuth),
            'content-type': contentType,
            'idempotency-key': fc.oneof(fc.uuid(), headerText, fc.constant(undefined)),
            prefer: fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, { arbitrary: fc.constant('wait=1'), weight: 1 }, { arbitrary: headerText, weight: 1 }),
          }),
          body: badBody(deposit(), paymentRequest),
        }),
      ),
    );
  });

  test('When the orchestrator gets generated paths, queries and methods, then it never answers a 5xx', async () => {
    const path = fc.oneof(
      query.map((search) => `/v1/payments${search}`),
      fc.tuple(segment, query).map(([id, search]) => `/v1/payments/${id}${search}`),
      query.map((search) => `/v1/reviews${search}`),
      query.map((search) => `/v1/routing${search}`),
      fc.webPath(),
    );
    await check(
      handledProperty(
        fc.record({
          method,
          url: path.map((suffix) => `${orchestrator}${suffix.startsWith('/') ? suffix : `/${suffix}`}`),
          headers: fc.record({ authorization: authorization(paymentsAuth), 'content-type': contentType }),
          body: rawBody,
        }),
      ),
    );
  });

  test('When PUT /sandbox gets generated bad settings, then it always answers a 4xx in the error shape', async () => {
    await check(
      refusedProperty(
        fc.record({
          method: fc.constant('PUT'),
          url: fc.constant(`${sandbox}/sandbox`),
          headers: fc.record({ 'content-type': fc.constant('application/json') }),
          body: badBody({ mode: 'late', latencyMs: 10, rate: 0.5, periodMs: 1000, lateMs: 100 }, sandboxSettings),
        }),
      ),
    );
  });

  test('When the back office write routes get generated bad bodies, ids and preconditions, then they always answer a 4xx in the error shape', async () => {
    const { gatewayId: _id, ...validRule } = rule('alpha');
    const id = fc.oneof(fc.constantFrom(...GATEWAYS, 'new-gateway'), segment);
    const unknownId = segment.filter((text) => !GATEWAYS.includes(text));
    const headers = fc.record({
      authorization: authorization(rulesAuth),
      'content-type': fc.constant('application/json'),
      'if-match': fc.oneof(fc.constant(undefined), fc.constant('"1"'), headerText),
      'if-none-match': fc.oneof(fc.constant(undefined), fc.constant('*'), headerText),
    });
    const write = (verb: string, url: fc.Arbitrary<string>, body: fc.Arbitrary<string | undefined>) =>
      fc.record({ method: fc.constant(verb), url: url.map((path) => `${backoffice}${path}`), headers, body });
    await check(
      refusedProperty(
        fc.oneof(
          write('PUT', id.map((gateway) => `/v1/gateways/${gateway}`), badBody(validRule, ruleBody)),
          // Only ids without a rule: deleting an existing one with the right version is a valid request.
          write('DELETE', unknownId.map((gateway) => `/v1/gateways/${gateway}`), fc.constant(undefined)),
          write('POST', id.map((gateway) => `/v1/gateways/${gateway}/unavailable`), badBody({ reason: 'maintenance' }, unavailableBody)),
          write('POST', id.map((gateway) => `/v1/gateways/${gateway}/available`), badBody({}, availableBody)),
        ),
      ),
    );
  });

  test('When the back office gets generated paths, queries and methods, then it never answers a 5xx', async () => {
    const path = fc.oneof(
      query.map((search) => `/v1/gateways${search}`),
      fc.tuple(segment, query).map(([id, search]) => `/v1/gateways/${id}${search}`),
      segment.map((id) => `/v1/gateways/${id}/audit`),
      fc.webPath(),
    );
    await check(
      handledProperty(
        fc.record({
          // Only reads: a generated write could be a valid one, and the write routes have their own property above.
          method: fc.constant('GET'),
          url: path.map((suffix) => `${backoffice}${suffix.startsWith('/') ? suffix : `/${suffix}`}`),
          headers: fc.record({ authorization: authorization(rulesAuth) }),
        }),
      ),
    );
  });

  test('When all that bad input has been sent, then nothing was written, no setting changed and no service crashed', async () => {
    // Runs after the properties above (jest runs a file's tests in order).
    expect(await redisKeyCount(stack)).toBe(0);
    expect(await messageCount(stack.kafka, stack.topics.paymentStatus)).toBe(0);
    for (const gatewayId of GATEWAYS) expect(await messageCount(stack.kafka, stack.topics.gatewayRequests(gatewayId))).toBe(0);
    expect(await messageCount(stack.kafka, stack.topics.rules)).toBe(before.rules);
    expect(await messageCount(stack.kafka, stack.topics.audit)).toBe(before.audit);
    expect(await (await fetch(`${sandbox}/sandbox`)).text()).toBe(before.sandbox);
    expect(await rulesView()).toBe(before.gateways);
    expect(stack.crashes()).toEqual([]);
    for (const url of [orchestrator, backoffice, sandbox]) expect((await fetch(`${url}/healthz`)).status).toBe(200);
  });
});
