/**
 * What flattening an array costs in this Node's V8, by how it is written (docs/benchmarks/efficiency.md, session 9).
 * `Array.prototype.flat` and `flatMap` add each element through a runtime call in Node 20's V8, not a fast-path
 * copy: ioredis flattened every command's arguments that way (`new Command`, patched), and the orchestrator built
 * its outbox arguments and its messages with flatMap.
 *
 *   npx tsx bench/array-flattening.ts
 *
 * Prints nanoseconds per call for each form; compare them as ratios, the machine is shared.
 */
import { kept, nsPerCall } from './nanoseconds';

const ROUNDS = 1_000_000;

// A create script's arguments: keys, a count, the payment document, the change, then outbox field-value pairs.
const args = ['idem:a:k', 'payment:p', 'deadlines:3', 'outbox:p', 'outbox-pending', 'account:a', 'account:a:PENDING', 'p|h', '86400', 'x'.repeat(800), '{"id":"p"}', 'p:1:0', '{"topic":"t"}', 'p:1:1', '{"topic":"u"}'];
const fields = ['p:1:0', 'p:1:1', 'p:1:2'];
const messages = ['{"topic":"t"}', '{"topic":"u"}', '{"topic":"v"}'];

const forms: Array<[string, () => unknown]> = [
  ['15 arguments: args.flat() (ioredis unpatched)', () => args.flat()],
  ['15 arguments: a scan for nested arrays, then args.slice() (ioredis patched)', () => (args.some((arg) => Array.isArray(arg)) ? args.flat() : args.slice())],
  ['3 field-value pairs: flatMap((field, i) => [field, message])', () => fields.flatMap((field, index) => [field, messages[index]])],
  ['3 field-value pairs: forEach and push', () => {
    const entries: string[] = [];
    fields.forEach((field, index) => entries.push(field, messages[index]!));
    return entries;
  }],
  ['one message per effect, 2 effects: flatMap((effect) => [message])', () => fields.slice(0, 2).flatMap((field) => [field])],
  ['one message per effect, 2 effects: for...of and push', () => {
    const out: string[] = [];
    for (const field of fields.slice(0, 2)) out.push(field);
    return out;
  }],
];

for (const [name, run] of forms) console.log(`${nsPerCall(run, ROUNDS).toFixed(0).padStart(6)} ns  ${name}`);
if (kept === undefined) throw new Error('unreachable: keeps the results alive so none is optimised away');
