import type { GatewayRule } from '../../topics/schemas';
import { decide, regionWarnings, type RuleEntry } from './decide';
import { createAuditTrail, createRuleView } from './view';
import type { RuleAudited } from '../../topics/schemas';

const rule = (gatewayId: string, fields: Partial<GatewayRule> = {}): GatewayRule => ({
  gatewayId,
  enabled: true,
  regions: ['EU'],
  paymentTypes: ['deposit'],
  currencies: ['EUR'],
  amountBounds: { EUR: { min: '100', max: '100000000' } },
  weight: 1,
  timeoutMs: 5000,
  timeoutPolicy: { deposit: 'failover', withdrawal: 'cancel-first' },
  available: true,
  ...fields,
});
const entry = (version: number, fields: Partial<GatewayRule> = {}): RuleEntry => ({ rule: rule('alpha', fields), version, changedBy: 'seed', changedAt: '2026-01-01T00:00:00.000Z' });
const { gatewayId: _id, ...body } = rule('alpha', { weight: 5 });

describe('deciding a rule change', () => {
  it('When a gateway has no rule and the put has no precondition, then it is created at the version after any removed one', () => {
    expect(decide({ kind: 'put', gatewayId: 'alpha', body, ifNoneMatch: true }, { entry: undefined, lastVersion: 4 })).toMatchObject({ outcome: 'change', action: 'created', version: 5, before: null });
  });

  it('When a gateway has no rule and the put carries If-Match, then it is 412', () => {
    expect(decide({ kind: 'put', gatewayId: 'alpha', body, ifNoneMatch: false, ifMatch: 1 }, { entry: undefined, lastVersion: 0 })).toMatchObject({ status: 412 });
  });

  it('When an update has no If-Match, a stale one or If-None-Match, then it is 428, 412, 412', () => {
    const state = { entry: entry(3), lastVersion: 3 };
    expect(decide({ kind: 'put', gatewayId: 'alpha', body, ifNoneMatch: false }, state)).toMatchObject({ status: 428, code: 'precondition_required' });
    expect(decide({ kind: 'put', gatewayId: 'alpha', body, ifNoneMatch: false, ifMatch: 2 }, state)).toMatchObject({ status: 412, code: 'precondition_failed' });
    expect(decide({ kind: 'put', gatewayId: 'alpha', body, ifNoneMatch: true }, state)).toMatchObject({ status: 412, field: 'If-None-Match' });
  });

  it('When an update matches the version, then it advances the version and names the changed fields', () => {
    expect(decide({ kind: 'put', gatewayId: 'alpha', body, ifNoneMatch: false, ifMatch: 3 }, { entry: entry(3), lastVersion: 3 })).toMatchObject({
      outcome: 'change',
      action: 'updated',
      version: 4,
      changedFields: ['weight'],
    });
  });

  it('When a gateway is marked unavailable twice, then the second time changes nothing', () => {
    const first = decide({ kind: 'set-availability', gatewayId: 'alpha', available: false, reason: 'maintenance' }, { entry: entry(3), lastVersion: 3 });
    expect(first).toMatchObject({ outcome: 'change', action: 'marked-unavailable', after: { available: false, unavailableReason: 'maintenance' } });
    const marked = entry(4, { available: false, unavailableReason: 'maintenance' });
    expect(decide({ kind: 'set-availability', gatewayId: 'alpha', available: false, reason: 'maintenance' }, { entry: marked, lastVersion: 4 })).toMatchObject({ outcome: 'unchanged' });
    const back = decide({ kind: 'set-availability', gatewayId: 'alpha', available: true }, { entry: marked, lastVersion: 4 });
    expect(back).toMatchObject({ outcome: 'change', action: 'marked-available', changedFields: ['available', 'unavailableReason'] });
  });

  it('When the rule in force serves a currency without a bound (published before bounds, or by hand), then marking it available or re-publishing it is 409 invalid_rule naming the bound and nothing is decided, while marking it unavailable goes through', () => {
    const { amountBounds: _bounds, ...unbounded } = rule('alpha');
    const state = { entry: { ...entry(3), rule: unbounded }, lastVersion: 3 };
    const refused = { outcome: 'rejected', status: 409, code: 'invalid_rule', field: 'amountBounds.EUR' };
    // Taking it out of routing is never refused (an incident must not wait for a rule fix).
    expect(decide({ kind: 'set-availability', gatewayId: 'alpha', available: false, reason: 'maintenance' }, state)).toMatchObject({ outcome: 'change', action: 'marked-unavailable' });
    expect(decide({ kind: 'set-availability', gatewayId: 'alpha', available: true }, { ...state, entry: { ...state.entry, rule: { ...unbounded, available: false } } })).toMatchObject(refused);
    expect(decide({ kind: 'republish', gatewayId: 'alpha', audited: unbounded, reason: 'republished after divergence' }, state)).toMatchObject(refused);
    expect(decide({ kind: 'republish', gatewayId: 'alpha', audited: rule('alpha', { currencies: ['EUR', 'JPY'] }), reason: 'r' }, state)).toMatchObject({ ...refused, field: 'amountBounds.JPY' });
    // A removal publishes no rule: nothing to check. Nor does a change that changes nothing.
    expect(decide({ kind: 'republish', gatewayId: 'alpha', audited: null, reason: 'r' }, state)).toMatchObject({ outcome: 'change', after: null });
    expect(decide({ kind: 'set-availability', gatewayId: 'alpha', available: true }, state)).toMatchObject({ outcome: 'unchanged' });
  });

  it('When a removal has no rule to remove, then it is 404', () => {
    expect(decide({ kind: 'delete', gatewayId: 'alpha', ifMatch: 1 }, { entry: undefined, lastVersion: 2 })).toMatchObject({ status: 404 });
  });
});

describe('region warnings', () => {
  it('When the only gateway of a region is unavailable, disabled, weightless or removed, then the region is named', () => {
    const before = [rule('alpha', { regions: ['EU', 'US'] }), rule('beta', { regions: ['US'] })];
    expect(regionWarnings(before, before)).toEqual([]);
    for (const alpha of [rule('alpha', { available: false }), rule('alpha', { enabled: false }), rule('alpha', { weight: 0 })]) {
      expect(regionWarnings(before, [alpha, before[1] as GatewayRule]).map((warning) => warning.region)).toEqual(['EU']);
    }
    expect(regionWarnings(before, [before[1] as GatewayRule]).map((warning) => warning.region)).toEqual(['EU']);
    expect(regionWarnings(before, [rule('gamma', { regions: ['*'] })])).toEqual([]);
  });
});

describe('rule view and audit trail', () => {
  it('When the same audit event is delivered twice, then the trail keeps it once', () => {
    const trail = createAuditTrail();
    const event: RuleAudited = {
      eventId: 'e-1',
      type: 'rule.audited',
      occurredAt: '2026-01-01T00:00:00.000Z',
      schemaVersion: 1,
      gatewayId: 'alpha',
      action: 'created',
      actor: 'ann',
      changedFields: [],
      before: null,
      after: rule('alpha'),
      version: 1,
    };
    trail.add(event);
    trail.add(event);
    expect(trail.of('alpha')).toHaveLength(1);
  });

  it('When a rule event does not advance the version, then the view keeps what it holds; a removal keeps the version for a re-creation', async () => {
    const view = createRuleView();
    const event = (version: number, fields: Partial<GatewayRule> = {}) => ({
      eventId: `e-${version}`,
      type: 'rule.changed' as const,
      occurredAt: '2026-01-01T00:00:00.000Z',
      schemaVersion: 1 as const,
      rule: rule('alpha', fields),
      version,
      changedBy: 'ann',
    });
    expect(view.apply('alpha', event(2, { available: false }), '0')).toBe('applied');
    expect(view.apply('alpha', event(2), '1')).toBe('stale-version');
    expect(view.apply('alpha', event(1), '2')).toBe('stale-version');
    expect(view.get('alpha')).toMatchObject({ version: 2, rule: { available: false } });
    expect(view.apply('beta', event(3), '3')).toBe('wrong-key');
    expect(view.get('beta')).toBeUndefined();
    const waiting = view.untilApplied('alpha', '4', 1_000);
    view.apply('alpha', { eventId: 'e-r', type: 'rule.removed', occurredAt: '2026-01-01T00:00:00.000Z', schemaVersion: 1, gatewayId: 'alpha', version: 3, changedBy: 'ann' }, '4');
    expect(await waiting).toBe(true);
    expect(view.get('alpha')).toBeUndefined();
    expect(view.lastVersionOf('alpha')).toBe(3);
    expect(view.apply('alpha', event(2), '5')).toBe('stale-version');
    expect(view.get('alpha')).toBeUndefined();
    expect(await view.untilApplied('alpha', '6', 10)).toBe(false);
  });
});
