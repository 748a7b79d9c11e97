import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Express, Response } from 'express';

/**
 * The operator web page: one static HTML file and one small script, no build
 * step. The page itself needs no token; every API call it makes carries the
 * operator's bearer token, so the rules API's scope checks still apply.
 */
const PAGE_PATH = '/operator/';

/**
 * The page renders API data with textContent only and loads no third-party
 * code, so the policy can be strict: scripts from this origin only, no inline
 * script, no framing. Inline styles are allowed for the single <style> block.
 */
const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  // Small files: always revalidate, so a deploy is seen on the next load.
  'Cache-Control': 'no-cache',
};

/** Read once at start-up: a missing file fails the start, not the first visit. */
function asset(name: string): string {
  return readFileSync(join(__dirname, name), 'utf8');
}

export function operatorPageRoutes(app: Express): void {
  const html = asset('index.html');
  const script = asset('operator.js');
  const send = (res: Response, type: string, body: string) => {
    res.set(SECURITY_HEADERS).type(type).send(body);
  };

  app.get('/', (_req, res) => res.redirect(302, PAGE_PATH));
  // Express matches `/operator` and `/operator/` alike; the page needs the slash so `operator.js` resolves under it.
  app.get('/operator', (req, res) => {
    if (req.path.endsWith('/')) send(res, 'html', html);
    else res.redirect(301, PAGE_PATH);
  });
  app.get(`${PAGE_PATH}operator.js`, (_req, res) => send(res, 'js', script));
}
