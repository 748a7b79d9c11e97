import { localKafkaUsers } from '../scripts/kafka-local';
import { aclTable, DEFAULT_PRINCIPALS, principalPattern, TOPIC_RIGHTS, type AclRow } from './acls';
import { topicNames, topicSpecs } from './names';

const rows = aclTable('p.', ['alpha', 'beta']);
const writers = (topic: string) => rows.filter((row) => row.resourceType === 'topic' && row.name === topic && row.operation === 'write').map((row) => row.principal);
const readers = (topic: string) => rows.filter((row) => row.resourceType === 'topic' && row.name === topic && row.operation === 'read').map((row) => row.principal);
/** Whether a row lets `principal` READ the consumer group `group`, as the broker matches literal and prefixed names. */
const mayJoin = (principal: string, group: string) =>
  rows.some(
    (row: AclRow) =>
      row.resourceType === 'group' && row.principal === principal && (row.patternType === 'literal' ? row.name === group : group.startsWith(row.name)),
  );
const names = topicNames('p.');

describe('the ACL table (topics/acls.ts)', () => {
  test('When the stack creates its topics, then every one of them has its writers in the table', () => {
    for (const spec of topicSpecs('p.', ['alpha', 'beta'])) expect({ topic: spec.topic, writers: writers(spec.topic).length > 0 }).toEqual({ topic: spec.topic, writers: true });
  });

  test('When topicNames has a topic, then TOPIC_RIGHTS says who writes and reads it (aclTable refuses a topic without)', () => {
    const known = Object.keys(topicNames('')).filter((key) => key !== 'gatewayRequests');
    for (const key of known) expect(TOPIC_RIGHTS[key]).toBeDefined();
  });

  test('When the control plane is written, then only the back office writes rules and only orchestrators write health, statuses and requests', () => {
    expect(writers(names.rules)).toEqual([DEFAULT_PRINCIPALS.backoffice]);
    expect(writers(names.gatewayHealth)).toEqual([DEFAULT_PRINCIPALS.orchestrator]);
    expect(writers(names.paymentStatus)).toEqual([DEFAULT_PRINCIPALS.orchestrator]);
    expect(writers(names.gatewayRequests('alpha'))).toEqual([DEFAULT_PRINCIPALS.orchestrator]);
    expect(writers(names.gatewayResults)).toEqual([DEFAULT_PRINCIPALS.gateway('alpha')]);
    expect(readers(names.gatewayRequests('alpha'))).toEqual([DEFAULT_PRINCIPALS.gateway('alpha')]);
  });

  test('When the services join their consumer groups, then each may join its own groups and no other service\'s', () => {
    expect(mayJoin('User:orchestrator', 'p.orchestrator')).toBe(true);
    expect(mayJoin('User:orchestrator', 'p.orchestrator-rules-0b5c')).toBe(true);
    expect(mayJoin('User:orchestrator', 'p.orchestrator-health-0b5c')).toBe(true);
    expect(mayJoin('User:backoffice', 'p.backoffice-stats-0b5c')).toBe(true);
    expect(mayJoin('User:gateway', 'p.gateway-alpha')).toBe(true);
    expect(mayJoin('User:gateway', 'p.orchestrator')).toBe(false);
    expect(mayJoin('User:backoffice', 'p.orchestrator')).toBe(false);
    expect(mayJoin('User:orchestrator', 'p.gateway-alpha')).toBe(false);
    // Another stack's prefix is another stack.
    expect(mayJoin('User:orchestrator', 'q.orchestrator')).toBe(false);
  });

  test('When the gateway principal names {gatewayId}, then each gateway reads only its own requests', () => {
    const own = aclTable('', ['alpha', 'beta'], { ...DEFAULT_PRINCIPALS, gateway: principalPattern('User:gateway-{gatewayId}') });
    const readersOf = (topic: string) => own.filter((row) => row.name === topic && row.operation === 'read').map((row) => row.principal);
    expect(readersOf('gateway.alpha.requests')).toEqual(['User:gateway-alpha']);
    expect(readersOf('gateway.beta.requests')).toEqual(['User:gateway-beta']);
    expect(own.filter((row) => row.name === 'gateway.results' && row.operation === 'write').map((row) => row.principal).sort()).toEqual(['User:gateway-alpha', 'User:gateway-beta']);
  });

  test('When the local broker is formatted, then it has the super user and every principal the table names', () => {
    const users = localKafkaUsers();
    for (const principal of ['User:admin', DEFAULT_PRINCIPALS.orchestrator, DEFAULT_PRINCIPALS.gateway('alpha'), DEFAULT_PRINCIPALS.backoffice]) {
      expect(users.has(principal.replace(/^User:/, ''))).toBe(true);
    }
  });
});
