/**
 * What three small steps of every payment cost in this Node, the way they were written before session 10 and the
 * way they are now (docs/benchmarks/efficiency.md, session 10):
 * - the CRC-32C of each record batch kafkajs produces: its own loop over one byte at a time, against crc-32's
 *   (patches/kafkajs+2.2.4.patch, docs/decisions/0020);
 * - the request hash of an accepted payment: `createHash(...).update().digest()` against one `crypto.hash` call;
 * - a named closure made per call: tsx compiles with esbuild's keepNames, so each one also costs a call that
 *   defines its `name` (router.route's exclusion and weight functions were made per payment that way).
 *
 *   npx tsx bench/per-payment-steps.ts
 *
 * Prints nanoseconds per call for each form; compare them as ratios, the machine is shared.
 */
import { createHash, hash, randomBytes } from 'node:crypto';
import crc32c from 'crc-32/crc32c';
import { kept, nsPerCall } from './nanoseconds';

// eslint-disable-next-line @typescript-eslint/no-require-imports -- kafkajs' own loop, still in the package; no types
const byteAtATime = require('kafkajs/src/protocol/recordBatch/crc32C/crc32C') as (buffer: Buffer) => number;

const ROUNDS = 200_000;
// About one produce request's record batch at flat out: a few payments' messages of 400–600 bytes each.
const batch = randomBytes(2_048);
const canonical = JSON.stringify(['deposit', 'bench-acc-123', '12345', 'EUR', 'EU']);
const rules = [1, 2, 3];

const forms: Array<[string, () => unknown]> = [
  ['CRC-32C of 2 KB: kafkajs, a byte at a time, unsigned through a Uint32Array (unpatched)', () => Uint32Array.from([byteAtATime(batch)])[0]],
  ['CRC-32C of 2 KB: crc-32, sixteen bytes a step, unsigned by >>> 0 (patched)', () => crc32c.buf(batch) >>> 0],
  ['request hash: createHash("sha256").update(text).digest("hex")', () => createHash('sha256').update(canonical).digest('hex')],
  ['request hash: hash("sha256", text, "hex")', () => hash('sha256', canonical, 'hex')],
  ['two named closures made per call, each passed on', () => {
    const exclude = (id: number) => (id > 2 ? 'excluded' : undefined);
    const weightOf = (id: number) => id * 2;
    return rules.map((id) => exclude(id) ?? weightOf(id));
  }],
];
const exclude = (id: number) => (id > 2 ? 'excluded' : undefined);
const weightOf = (id: number) => id * 2;
forms.push(['the same two closures made once', () => rules.map((id) => exclude(id) ?? weightOf(id))]);

for (const [name, run] of forms) console.log(`${nsPerCall(run, ROUNDS).toFixed(0).padStart(6)} ns  ${name}`);
if (kept === undefined) throw new Error('unreachable: keeps the results alive so none is optimised away');
