import type { RequestHandler } from 'express';
import { jwtVerify, SignJWT, errors } from 'jose';
import { z } from 'zod';
import { AppError } from './errors';
import { DEVELOPMENT_RULES_KEY } from './signing';

/**
 * The signing key the local stack and the tests use. It is public (it is in
 * this repository), so production mode refuses to start with it.
 */
export const DEVELOPMENT_SIGNING_KEY = 'development-only-key-never-use-in-production-0123456789';

/** Configuration every service that checks tokens understands. */
export const authEnv = {
  /** `production` refuses the development signing key. */
  APP_ENV: z.enum(['development', 'production']).default('development'),
  /** HMAC key (HS256) that signs bearer tokens; at least 32 characters. */
  AUTH_JWT_SECRET: z.string().min(32, 'at least 32 characters').default(DEVELOPMENT_SIGNING_KEY),
  AUTH_JWT_ISSUER: z.string().min(1).default('payment-orchestrator'),
};

/** Refines a config schema that spreads `authEnv` (and maybe `signingEnv`): production must bring its own keys. */
export const refuseDevelopmentKeyInProduction = <T extends { APP_ENV: string; AUTH_JWT_SECRET: string; RULES_SIGNING_KEY?: string }>(
  config: T,
  ctx: z.RefinementCtx,
) => {
  if (config.APP_ENV !== 'production') return;
  if (config.AUTH_JWT_SECRET === DEVELOPMENT_SIGNING_KEY) {
    ctx.addIssue({ code: 'custom', path: ['AUTH_JWT_SECRET'], message: 'production mode needs its own signing key, not the development one' });
  }
  if (config.RULES_SIGNING_KEY === DEVELOPMENT_RULES_KEY) {
    ctx.addIssue({ code: 'custom', path: ['RULES_SIGNING_KEY'], message: 'production mode needs its own rules signing key, not the development one' });
  }
};

export interface Principal {
  subject: string;
  scopes: ReadonlySet<string>;
}

export interface TokenSettings {
  secret: string;
  issuer: string;
}

const encode = (secret: string) => new TextEncoder().encode(secret);

/** Signs a token with the given scopes (space-separated in the `scope` claim, as in OAuth 2). */
export function mintToken(settings: TokenSettings, subject: string, scopes: readonly string[], expiresIn = '12h'): Promise<string> {
  return new SignJWT({ scope: scopes.join(' ') })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(subject)
    .setIssuer(settings.issuer)
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(encode(settings.secret));
}

export type TokenVerifier = (authorization: string | undefined) => Promise<Principal>;

/** Verified tokens remembered at most; past it the oldest are forgotten (verified again on their next use). */
const VERIFIED_TOKENS_KEPT = 10_000;
/** How long a verified token without an `exp` claim is remembered, in ms: it is then checked again. */
const VERIFIED_WITHOUT_EXPIRY_MS = 60_000;

/**
 * Checks a bearer token's signature, issuer and expiry; anything wrong is a
 * 401. A client sends the same token with every request, so a verified token
 * is remembered (by its whole text, signature included, so a changed token is
 * a new one) until it expires: verifying is an HMAC and a JSON parse per
 * request otherwise, a visible share of the orchestrator's CPU per payment.
 * Only successes are remembered. `now` gives epoch ms.
 */
export function createTokenVerifier(settings: TokenSettings, now: () => number = Date.now): TokenVerifier {
  const key = encode(settings.secret);
  const verified = new Map<string, { principal: Principal; untilMs: number }>();
  return async (authorization) => {
    // The scheme name is case-insensitive (RFC 9110 §11.1): `bearer` and `BEARER` are the same scheme; the token is not.
    const token = /^Bearer +([A-Za-z0-9._~+/=-]+)$/i.exec(authorization ?? '')?.[1];
    if (!token) throw new AppError(401, 'unauthorized', 'a bearer token is required', 'Authorization');
    const known = verified.get(token);
    if (known && now() < known.untilMs) return known.principal;
    if (known) verified.delete(token);
    try {
      const { payload } = await jwtVerify(token, key, { issuer: settings.issuer, algorithms: ['HS256'], currentDate: new Date(now()) });
      const scope = typeof payload.scope === 'string' ? payload.scope : '';
      const principal = { subject: payload.sub ?? 'unknown', scopes: new Set(scope.split(' ').filter(Boolean)) };
      if (verified.size >= VERIFIED_TOKENS_KEPT) verified.delete(verified.keys().next().value!);
      verified.set(token, { principal, untilMs: payload.exp === undefined ? now() + VERIFIED_WITHOUT_EXPIRY_MS : payload.exp * 1000 });
      return principal;
    } catch (error) {
      const why = error instanceof errors.JWTExpired ? 'the token has expired' : 'the token is not valid';
      throw new AppError(401, 'unauthorized', why, 'Authorization');
    }
  };
}

/**
 * Lets a request through only with a valid token carrying `scope`; 401 or 403 otherwise, before any work. A
 * principal an earlier handler of the same request verified (the orchestrator's admission gate runs before the
 * body is read, the route after) is used again rather than verified twice.
 */
export function requireScope(verify: TokenVerifier, scope: string): RequestHandler {
  return async (req, res, next) => {
    const principal = (res.locals.principal as Principal | undefined) ?? (await verify(req.get('Authorization')));
    if (!principal.scopes.has(scope)) throw new AppError(403, 'forbidden', `this operation needs the ${scope} scope`, 'Authorization');
    res.locals.principal = principal;
    next();
  };
}
