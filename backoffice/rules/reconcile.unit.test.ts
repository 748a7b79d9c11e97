import { rule } from '../../test/support/stack';
import type { GatewayRule, RuleAudited } from '../../topics/schemas';
import { divergenceOf, latestAudited, ruleHash, type TopicHeld } from './reconcile';

const audited = (version: number, after: GatewayRule | null): RuleAudited => ({
  eventId: `e${version}`,
  type: 'rule.audited',
  occurredAt: '2026-11-30T10:00:00.000Z',
  schemaVersion: 1,
  gatewayId: 'alpha',
  action: after === null ? 'deleted' : 'updated',
  actor: 'ann',
  changedFields: [],
  before: null,
  after,
  version,
});
const live = rule('alpha', { weight: 3 });
const held = (version: number, body: GatewayRule = live): TopicHeld => ({ state: 'rule', version, bodyHash: ruleHash(body) ?? '', offset: '9' });

describe('rule topic against the audit trail (pure comparison)', () => {
  test.each<[string, RuleAudited, TopicHeld | undefined, string | undefined]>([
    ['the audited rule at its version', audited(4, live), held(4), undefined],
    ['a newer rule on the topic than audited (its audit entry still in the outbox)', audited(4, live), held(5, rule('alpha')), undefined],
    ['nothing on the topic', audited(4, live), undefined, 'missing'],
    ['a refused message (a bare tombstone) last under the key', audited(4, live), { state: 'none', refused: 'bad-signature', offset: '9' }, 'missing'],
    ['a signed removal nobody audited', audited(4, live), { state: 'removed', version: 5, offset: '9' }, 'missing'],
    ['an older signed rule replayed last', audited(4, live), held(1, rule('alpha')), 'rolled-back'],
    ['another body at the same version', audited(4, live), held(4, rule('alpha', { weight: 9 })), 'body-differs'],
    ['an audited removal, and nothing on the topic', audited(6, null), undefined, undefined],
    ['an audited removal, and a rule from before it replayed', audited(6, null), held(5), 'rolled-back'],
  ])('When the trail has %s, then the divergence is as expected', (_case, entry, topic, expected) => {
    expect(divergenceOf(entry, topic)).toBe(expected);
  });

  test('When two entries share a version (two writers), then the later one counts; a rule hash ignores key order', () => {
    const first = audited(3, live);
    const second = { ...audited(3, rule('alpha', { weight: 7 })), eventId: 'later' };
    expect(latestAudited([audited(2, live), first, second])?.eventId).toBe('later');
    const reordered = Object.fromEntries(Object.entries(live).reverse()) as GatewayRule;
    expect(ruleHash(reordered)).toBe(ruleHash(live));
  });
});
