/**
 * What building a message object costs in this Node's V8, by how it is written (docs/benchmarks/efficiency.md,
 * session 7). A key that an object literal adds after a spread (`{ ...envelope, paymentId }`) is a runtime call in
 * Node 20's V8, not a cached map transition; a key that replaces one the spread copied is not.
 *
 *   npx tsx bench/object-building.ts
 *
 * Prints nanoseconds per object for each form; compare them as ratios, the machine is shared.
 */
import { kept, nsPerCall } from './nanoseconds';

const ROUNDS = 200_000;

const envelope = () => ({ eventId: 'e3b0c442-98fc-4c14-9afb-4c8996fb9242', type: 'payment.status', occurredAt: '2026-11-30T12:00:00.000Z', schemaVersion: 1 });
const fields = () => ({ paymentId: 'p', status: 'PENDING', sequence: 1, paymentType: 'deposit', accountId: 'a', amount: '1000', currency: 'EUR', region: 'EU', attemptId: 't' });

const forms: Array<[string, () => unknown]> = [
  ['{ ...envelope, nine new keys }', () => ({ ...envelope(), paymentId: 'p', status: 'PENDING', sequence: 1, paymentType: 'deposit', accountId: 'a', amount: '1000', currency: 'EUR', region: 'EU', attemptId: 't' })],
  ['{ ...envelope, one new key }', () => ({ ...envelope(), paymentId: 'p' })],
  ['{ ...fields, one key replaced }', () => ({ ...fields(), status: 'SUCCESS' })],
  ['Object.assign(envelope, nine keys)', () => Object.assign(envelope(), fields())],
  ['{ ...fields, ...envelope }: spreads only', () => ({ ...fields(), ...envelope() })],
];

for (const [name, build] of forms) console.log(`${name.padEnd(38)} ${nsPerCall(build, ROUNDS).toFixed(0).padStart(6)} ns`);
if (kept === undefined) throw new Error('unreachable: keeps the objects alive so none is optimised away');
