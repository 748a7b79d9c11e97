// Who may do what on the brokers: the one table that both sets the broker's ACLs
// (`npm run topics:create`, `npm start`, the compose `topics` job, the test
// harness) and documents them (docs/security.md is this table in words).
//
// Every service authenticates as a principal of its own (SASL, KAFKA_SASL_* in
// runtime/config.ts) and gets the least rights it needs: a WRITE or READ on a
// topic implies DESCRIBE of it, and a READ on a consumer group lets it join,
// commit and fetch its offsets. Nothing here grants CREATE, ALTER, DELETE or
// any cluster right: topics and ACLs are made by the setup principal, a super
// user of the brokers (the local broker's `admin`), which needs no ACL.
import {
  AclOperationTypes,
  AclPermissionTypes,
  AclResourceTypes,
  ResourcePatternTypes,
  type AclEntry,
  type Admin,
} from 'kafkajs';
import { topicNames } from './names';

/** The services that hold a principal of their own. */
export type Service = 'orchestrator' | 'gateway' | 'backoffice';

/** The principal of each service, as the brokers name it (`User:<SASL user name>`). */
export interface Principals {
  orchestrator: string;
  /** A gateway worker's principal; one for every gateway, or one per gateway. */
  gateway: (gatewayId: string) => string;
  backoffice: string;
}

/** The principals the local broker has (scripts/kafka/local-users) and that the ACLs name unless told otherwise. */
export const DEFAULT_PRINCIPALS: Principals = {
  orchestrator: 'User:orchestrator',
  gateway: () => 'User:gateway',
  backoffice: 'User:backoffice',
};

/**
 * A principal pattern from the environment: `User:name`, where `{gatewayId}` (gateways only) stands for
 * the gateway, so `User:gateway-{gatewayId}` gives each gateway worker a principal of its own.
 */
export const principalPattern = (pattern: string) => (gatewayId: string) => pattern.replaceAll('{gatewayId}', gatewayId);

interface TopicRights {
  write: readonly Service[];
  read: readonly Service[];
}

/**
 * The shared topics, by their key in `topicNames`: who writes, who reads. A gateway's request topic is per
 * gateway (below). Keys that `topicNames` does not have (yet) are skipped; a topic without an entry here is an
 * error ({@link aclTable}), so a new topic cannot be forgotten.
 */
export const TOPIC_RIGHTS: Readonly<Record<string, TopicRights>> = {
  /** Every gateway answers here; the orchestrators read it in one group. */
  gatewayResults: { write: ['gateway'], read: ['orchestrator'] },
  /** Only the orchestrators publish payment states (the platform reads them with principals of its own). */
  paymentStatus: { write: ['orchestrator'], read: [] },
  /** Attempt-level changes, published by the orchestrators only. */
  paymentAttempts: { write: ['orchestrator'], read: [] },
  /** Routing rules: only the back office writes them; orchestrators and the back office follow them. */
  rules: { write: ['backoffice'], read: ['orchestrator', 'backoffice'] },
  /** Breaker states: only orchestrators write them (signed too, ADR 0016); the back office shows them. */
  gatewayHealth: { write: ['orchestrator'], read: ['orchestrator', 'backoffice'] },
  /** Outcome counts per instance, for the back office's success rates. */
  gatewayStats: { write: ['orchestrator'], read: ['backoffice'] },
  /** Every consumer parks what it cannot accept; people read it (with a principal of their own). */
  deadLetter: { write: ['orchestrator', 'gateway', 'backoffice'], read: [] },
  /** The back office's audit trail, which it rebuilds its history from. */
  audit: { write: ['backoffice'], read: ['backoffice'] },
  /** Operators' decisions on payments in review: written by the back office, applied by the orchestrators. */
  reviews: { write: ['backoffice'], read: ['orchestrator', 'backoffice'] },
};

/** One ACL: `principal` is allowed `operation` on the resource. */
export interface AclRow {
  principal: string;
  resourceType: 'topic' | 'group';
  /** `literal`: this exact name; `prefixed`: every name that starts with it. */
  patternType: 'literal' | 'prefixed';
  name: string;
  operation: 'read' | 'write';
}

/**
 * Every ACL a stack under `prefix` (TOPIC_PREFIX) with these gateways needs. The consumer groups follow the
 * services' own names: `{prefix}orchestrator…` (results, and the rules, health and reviews followers),
 * `{prefix}backoffice…` (its followers) and `{prefix}gateway-{gatewayId}` (one per gateway).
 */
export function aclTable(prefix: string, gatewayIds: readonly string[], principals: Principals = DEFAULT_PRINCIPALS): AclRow[] {
  const names = topicNames(prefix) as Record<string, unknown>;
  const rows: AclRow[] = [];
  const topic = (principal: string, name: string, operation: AclRow['operation']) =>
    rows.push({ principal, resourceType: 'topic', patternType: 'literal', name, operation });
  const servicePrincipals = (service: Service): string[] =>
    service === 'gateway' ? [...new Set(gatewayIds.map(principals.gateway))] : [principals[service]];

  for (const [key, name] of Object.entries(names)) {
    if (typeof name !== 'string') continue; // gatewayRequests, per gateway below
    const rights = TOPIC_RIGHTS[key];
    if (!rights) throw new Error(`topics/acls.ts: topic ${key} (${name}) has no rights in TOPIC_RIGHTS`);
    for (const service of rights.write) for (const principal of servicePrincipals(service)) topic(principal, name, 'write');
    for (const service of rights.read) for (const principal of servicePrincipals(service)) topic(principal, name, 'read');
  }
  const requests = topicNames(prefix).gatewayRequests;
  for (const gatewayId of gatewayIds) {
    // Only the orchestrators send attempts and commands; each gateway reads its own requests, in its own group.
    topic(principals.orchestrator, requests(gatewayId), 'write');
    topic(principals.gateway(gatewayId), requests(gatewayId), 'read');
    rows.push({ principal: principals.gateway(gatewayId), resourceType: 'group', patternType: 'literal', name: `${prefix}gateway-${gatewayId}`, operation: 'read' });
  }
  rows.push({ principal: principals.orchestrator, resourceType: 'group', patternType: 'prefixed', name: `${prefix}orchestrator`, operation: 'read' });
  rows.push({ principal: principals.backoffice, resourceType: 'group', patternType: 'prefixed', name: `${prefix}backoffice`, operation: 'read' });
  return rows;
}

const toEntry = (row: AclRow): AclEntry => ({
  resourceType: row.resourceType === 'topic' ? AclResourceTypes.TOPIC : AclResourceTypes.GROUP,
  resourceName: row.name,
  resourcePatternType: row.patternType === 'literal' ? ResourcePatternTypes.LITERAL : ResourcePatternTypes.PREFIXED,
  principal: row.principal,
  host: '*',
  operation: row.operation === 'read' ? AclOperationTypes.READ : AclOperationTypes.WRITE,
  permissionType: AclPermissionTypes.ALLOW,
});

const entryKey = (entry: Pick<AclEntry, 'resourceType' | 'resourceName' | 'resourcePatternType' | 'principal' | 'operation'>) =>
  `${entry.resourceType}/${entry.resourcePatternType}/${entry.resourceName}/${entry.principal}/${entry.operation}`;

/**
 * Creates the ACLs (existing ones stay as they are: creating an ACL twice is harmless) and resolves once the
 * broker answering describes them all, so a service started next is not refused for an ACL still on its way.
 * Needs a principal allowed to alter the cluster's ACLs (a super user). Does not remove ACLs that are no longer
 * in the table (a gateway taken out of the rules file keeps its rights until an operator removes them).
 */
export async function applyAcls(admin: Admin, rows: readonly AclRow[], timeoutMs = 15_000): Promise<void> {
  const entries = rows.map(toEntry);
  if (entries.length === 0) return;
  await admin.createAcls({ acl: entries });
  const wanted = new Set(entries.map(entryKey));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const described = await Promise.all(
      [...new Set(entries.map((entry) => entry.principal))].map((principal) =>
        admin.describeAcls({
          principal,
          resourceType: AclResourceTypes.ANY,
          resourcePatternType: ResourcePatternTypes.ANY,
          operation: AclOperationTypes.ANY,
          permissionType: AclPermissionTypes.ALLOW,
        }),
      ),
    );
    const present = new Set(
      described.flatMap(({ resources }) =>
        resources.flatMap((resource) => resource.acls.map((acl) => entryKey({ ...resource, principal: acl.principal, operation: acl.operation }))),
      ),
    );
    const missing = [...wanted].filter((key) => !present.has(key));
    if (missing.length === 0) return;
    if (Date.now() > deadline) throw new Error(`ACLs not in force ${timeoutMs} ms after they were created: ${missing.slice(0, 5).join(', ')}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
