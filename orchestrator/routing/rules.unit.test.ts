import type { GatewayRule, RuleEvent } from '../../topics/schemas';
import { ruleBuilder } from '../test-fixtures';
import { createRuleBook } from './rules';

const rule = ruleBuilder({ paymentTypes: ['deposit'] });
const envelope = { eventId: 'e', occurredAt: '2026-01-01T00:00:00.000Z', schemaVersion: 1, changedBy: 'ann' };
const changed = (version: number, fields: Partial<GatewayRule> = {}, gatewayId = 'alpha'): RuleEvent => ({ ...envelope, type: 'rule.changed', rule: rule(gatewayId, fields), version });
const removed = (version: number): RuleEvent => ({ ...envelope, type: 'rule.removed', gatewayId: 'alpha', version });

describe('the rule book only moves forward', () => {
  test('When an older or equal version arrives after a newer one, then it is refused and the newer rule stays', () => {
    const book = createRuleBook();
    expect(book.apply('alpha', changed(1), '0')).toBeUndefined();
    expect(book.apply('alpha', changed(2, { available: false }), '1')).toBeUndefined();
    expect(book.apply('alpha', changed(1), '2')).toEqual({ refused: 'stale-version', held: 2 });
    expect(book.apply('alpha', changed(2), '3')).toEqual({ refused: 'stale-version', held: 2 });
    expect(book.ruleOf('alpha')).toMatchObject({ available: false });
    expect(book.version()).toBe('rules@1');
  });

  test('When a rule arrives under another gateway key, then it is refused', () => {
    const book = createRuleBook();
    expect(book.apply('beta', changed(5, {}, 'alpha'), '0')).toEqual({ refused: 'wrong-key', names: 'alpha' });
    expect(book.rules()).toEqual([]);
  });

  test('When a gateway is removed, then an older rule cannot bring it back, and a newer one can', () => {
    const book = createRuleBook();
    book.apply('alpha', changed(1), '0');
    expect(book.apply('alpha', removed(2), '1')).toBeUndefined();
    expect(book.ruleOf('alpha')).toBeUndefined();
    expect(book.apply('alpha', changed(1), '2')).toMatchObject({ refused: 'stale-version' });
    expect(book.ruleOf('alpha')).toBeUndefined();
    expect(book.apply('alpha', changed(3, { weight: 4 }), '3')).toBeUndefined();
    expect(book.ruleOf('alpha')).toMatchObject({ weight: 4 });
  });

  test('When the same event is delivered twice, then the second changes nothing', () => {
    const book = createRuleBook();
    const event = changed(1);
    book.apply('alpha', event, '0');
    expect(book.apply('alpha', event, '0')).toMatchObject({ refused: 'stale-version' });
    expect(book.rules()).toHaveLength(1);
  });
});
