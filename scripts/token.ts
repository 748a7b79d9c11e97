// `npm run token -- <scope…>` prints a bearer token the local stack accepts,
// signed with AUTH_JWT_SECRET (the development key unless set).
import { z } from 'zod';
import { authEnv, mintToken } from '../runtime/auth';
import { parseConfig } from '../runtime/config';

const KNOWN_SCOPES = ['payments:write', 'payments:read', 'rules:read', 'rules:write', 'reviews:read', 'reviews:resolve'];

async function main(): Promise<void> {
  const config = parseConfig(z.object(authEnv), process.env);
  const scopes = process.argv.slice(2);
  if (scopes.length === 0 || scopes.some((scope) => !KNOWN_SCOPES.includes(scope))) {
    console.error(`usage: npm run token -- <scope…>   (scopes: ${KNOWN_SCOPES.join(', ')})`);
    process.exit(2);
  }
  console.log(await mintToken({ secret: config.AUTH_JWT_SECRET, issuer: config.AUTH_JWT_ISSUER }, 'local-user', scopes));
}

void main();
