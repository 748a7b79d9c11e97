import { SignJWT } from 'jose';
import { createTokenVerifier, mintToken } from './auth';

const settings = { secret: 'a-test-secret-that-is-long-enough-0123456789', issuer: 'test-issuer' };
const bearer = (token: string) => `Bearer ${token}`;

describe('token verifier', () => {
  test('When a verified token comes again before it expires, then it gives the same principal; after its expiry it is refused', async () => {
    const token = await mintToken(settings, 'platform', ['payments:write'], '1h');
    const expiresAtMs = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).exp * 1000;
    let nowMs = Date.now();
    const verify = createTokenVerifier(settings, () => nowMs);

    const first = await verify(bearer(token));
    const again = await verify(bearer(token));
    expect(again).toBe(first);
    expect({ subject: again.subject, scopes: [...again.scopes] }).toEqual({ subject: 'platform', scopes: ['payments:write'] });

    nowMs = expiresAtMs;
    await expect(verify(bearer(token))).rejects.toMatchObject({ status: 401, message: 'the token has expired' });
  });

  test('When a remembered token is altered, then the altered one is verified on its own and refused', async () => {
    const token = await mintToken(settings, 'platform', ['payments:write']);
    const verify = createTokenVerifier(settings);
    await verify(bearer(token));
    const [header, , signature] = token.split('.');
    const widened = Buffer.from(JSON.stringify({ scope: 'payments:write backoffice:admin', sub: 'platform', iss: settings.issuer })).toString('base64url');
    await expect(verify(bearer(`${header}.${widened}.${signature}`))).rejects.toMatchObject({ status: 401, message: 'the token is not valid' });
  });

  test('When a token has no expiry, then it is verified again after a minute, so a changed key takes effect', async () => {
    const token = await new SignJWT({ scope: 'payments:read' }).setProtectedHeader({ alg: 'HS256' }).setSubject('reader').setIssuer(settings.issuer).sign(new TextEncoder().encode(settings.secret));
    let nowMs = Date.now();
    const verify = createTokenVerifier(settings, () => nowMs);
    const first = await verify(bearer(token));
    nowMs += 59_000;
    expect(await verify(bearer(token))).toBe(first);
    nowMs += 2_000;
    const later = await verify(bearer(token));
    expect(later).not.toBe(first);
    expect(later.subject).toBe('reader');
  });
});
