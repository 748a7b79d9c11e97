import type { Express, Request, Response } from 'express';
import { z } from 'zod';
import { requireScope, type Principal, type TokenVerifier } from '../../runtime/auth';
import { AppError } from '../../runtime/errors';
import { parseOr400 } from '../../runtime/http';
import { ids } from '../../topics/envelope';
import { gatewayRule } from '../../topics/schemas';
import { regionWarnings, type RuleCommand, type RuleEntry } from '../rules/decide';
import { latestAudited, type RulesReconciler } from '../rules/reconcile';
import { amountBoundIssues } from '../rules/validate';
import type { AuditTrail, HealthView, RuleView, SuccessRates } from '../rules/view';
import type { RuleWriter } from '../rules/writer';

export const READ_SCOPE = 'rules:read';
export const WRITE_SCOPE = 'rules:write';

/** A rule as an operator sends it: every field of the rule contract except the id, which the path names. */
export const ruleBody = gatewayRule
  .omit({ gatewayId: true })
  .strict()
  .superRefine((rule, ctx) => {
    for (const issue of amountBoundIssues(rule)) ctx.addIssue({ code: 'custom', ...issue });
    if (rule.available && rule.unavailableReason !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['unavailableReason'], message: 'only an unavailable gateway has a reason' });
    }
  });

export const unavailableBody = z.object({ reason: z.string().trim().min(1).max(200) }).strict();
const availableBody = z.object({}).strict();
/** Optional: what the operator adds to the audit entry's reason ("republished after divergence …"). */
export const republishBody = z.object({ note: z.string().trim().min(1).max(80).optional() }).strict();

/** A strong ETag carrying the version: `"3"`. */
const ifMatch = z
  .string()
  .regex(/^"[1-9][0-9]{0,14}"$/, 'a version ETag such as "3", as GET returned it')
  .transform((value) => Number(value.slice(1, -1)));
const ifNoneMatch = z.literal('*', { error: 'only * is supported' });

export interface BackofficeRouteDeps {
  view: RuleView;
  health: HealthView;
  successRates: SuccessRates;
  clock: () => Date;
  trail: AuditTrail;
  write: RuleWriter;
  /** Compares the rule topic with the audit trail (rules/reconcile.ts). */
  reconciler: RulesReconciler;
  verifyToken: TokenVerifier;
}

const etag = (version: number) => `"${version}"`;

export function backofficeRoutes(app: Express, deps: BackofficeRouteDeps): void {
  const canRead = requireScope(deps.verifyToken, READ_SCOPE);
  const canWrite = requireScope(deps.verifyToken, WRITE_SCOPE);
  const { view } = deps;

  const gatewayView = (entry: RuleEntry) => {
    const { gatewayId, ...rule } = entry.rule;
    const health = deps.health.of(gatewayId);
    return {
      gatewayId,
      version: entry.version,
      available: rule.available,
      ...(rule.unavailableReason === undefined ? {} : { unavailableReason: rule.unavailableReason }),
      /** `unknown` until an orchestrator has reported this gateway's breaker. */
      breaker: health?.breaker ?? 'unknown',
      ...(health ? { breakerReportedBy: health.reportedBy, breakerChangedAt: health.occurredAt } : {}),
      /** Null until an orchestrator reports an outcome of this gateway within its window. */
      recentSuccess: deps.successRates.of(gatewayId, deps.clock().getTime()) ?? null,
      changedBy: entry.changedBy,
      changedAt: entry.changedAt,
      rule,
      ...divergenceOf(gatewayId),
    };
  };
  /** Present only while the rule topic differs from the audit trail for this gateway. */
  const divergenceOf = (gatewayId: string) => {
    const divergence = deps.reconciler.of(gatewayId);
    return divergence ? { divergence } : {};
  };
  const gatewayIdOf = (req: Request<{ id: string }>) => parseOr400(ids.gatewayId, req.params.id, 'id');
  const principalOf = (res: Response) => (res.locals.principal as Principal).subject;
  const preconditions = (req: Request) => {
    const match = req.get('If-Match');
    return match === undefined ? {} : { ifMatch: parseOr400(ifMatch, match, 'If-Match') };
  };

  /** Runs a command and answers with the outcome: the gateway (with its ETag) and any warnings, or the refusal. */
  const run = async (res: Response, command: RuleCommand) => {
    const result = await deps.write(command, principalOf(res));
    if (result.outcome === 'rejected') {
      const current = view.get(command.gatewayId);
      if (current) res.set('ETag', etag(current.version));
      throw new AppError(result.status, result.code, result.message, result.field);
    }
    if (result.outcome === 'changed' && result.action === 'deleted') {
      res.json({ gatewayId: command.gatewayId, deleted: true, version: result.version, warnings: result.warnings });
      return;
    }
    const entry = result.entry;
    if (!entry) throw new AppError(409, 'conflict', `gateway ${command.gatewayId} was removed by another writer meanwhile`);
    const status = result.outcome === 'changed' && result.action === 'created' ? 201 : 200;
    if (status === 201) res.location(`/v1/gateways/${entry.rule.gatewayId}`);
    res.status(status).set('ETag', etag(entry.version)).json({ ...gatewayView(entry), warnings: result.warnings });
  };

  app.get('/v1/gateways', canRead, (_req, res) => {
    const rules = view.rules();
    // `divergences` also lists gateways the topic lost, which have no rule in the view.
    res.json({ gateways: view.list().map(gatewayView), warnings: regionWarnings(rules, rules), divergences: deps.reconciler.list() });
  });

  app.get('/v1/gateways/:id', canRead, (req: Request<{ id: string }>, res) => {
    const gatewayId = gatewayIdOf(req);
    const entry = view.get(gatewayId);
    if (!entry) throw new AppError(404, 'not_found', `no rule for gateway ${gatewayId}`, 'id');
    res.set('ETag', etag(entry.version)).json(gatewayView(entry));
  });

  app.put('/v1/gateways/:id', canWrite, async (req: Request<{ id: string }>, res) => {
    const gatewayId = gatewayIdOf(req);
    const noneMatch = req.get('If-None-Match');
    if (noneMatch !== undefined) parseOr400(ifNoneMatch, noneMatch, 'If-None-Match');
    const body = parseOr400(ruleBody, req.body ?? {});
    await run(res, { kind: 'put', gatewayId, body, ifNoneMatch: noneMatch !== undefined, ...preconditions(req) });
  });

  app.delete('/v1/gateways/:id', canWrite, async (req: Request<{ id: string }>, res) => {
    await run(res, { kind: 'delete', gatewayId: gatewayIdOf(req), ...preconditions(req) });
  });

  app.post('/v1/gateways/:id/unavailable', canWrite, async (req: Request<{ id: string }>, res) => {
    const gatewayId = gatewayIdOf(req);
    const { reason } = parseOr400(unavailableBody, req.body ?? {});
    await run(res, { kind: 'set-availability', gatewayId, available: false, reason, ...preconditions(req) });
  });

  app.post('/v1/gateways/:id/available', canWrite, async (req: Request<{ id: string }>, res) => {
    const gatewayId = gatewayIdOf(req);
    parseOr400(availableBody, req.body ?? {});
    await run(res, { kind: 'set-availability', gatewayId, available: true, ...preconditions(req) });
  });

  // The audited rule (or removal) again, at a version above every one the gateway had, through the outbox with an
  // audit entry of its own: every reader applies it, and the topic agrees with the trail again (issue 12).
  app.post('/v1/gateways/:id/republish', canWrite, async (req: Request<{ id: string }>, res) => {
    const gatewayId = gatewayIdOf(req);
    const { note } = parseOr400(republishBody, req.body ?? {});
    const audited = latestAudited(deps.trail.of(gatewayId));
    if (!audited) throw new AppError(404, 'not_found', `gateway ${gatewayId} has no audit trail: there is no audited rule to re-publish`, 'id');
    const divergence = await deps.reconciler.check(gatewayId);
    if (!divergence) {
      throw new AppError(409, 'not_diverged', `the rule topic agrees with the audit trail for gateway ${gatewayId} (version ${audited.version}): nothing to re-publish`, 'id');
    }
    const topicVersion = divergence.topic.version === null ? 'none' : `version ${divergence.topic.version}`;
    const why = `republished after divergence (${divergence.kind}: topic ${topicVersion}, audited version ${divergence.audited.version})`;
    const result = await deps.write({ kind: 'republish', gatewayId, audited: audited.after, reason: note ? `${why}: ${note}` : why }, principalOf(res));
    if (result.outcome === 'rejected') throw new AppError(result.status, result.code, result.message, result.field);
    if (result.outcome !== 'changed') throw new AppError(409, 'conflict', `gateway ${gatewayId} was not re-published; read it again`, 'id');
    // Compared again at once, so the answer (and the metric) says whether the topic agrees now.
    await deps.reconciler.run();
    res.json({ gatewayId, republished: true, version: result.version, removed: audited.after === null, divergence: deps.reconciler.of(gatewayId) ?? null, resolved: divergence });
  });

  app.get('/v1/gateways/:id/audit', canRead, (req: Request<{ id: string }>, res) => {
    const gatewayId = gatewayIdOf(req);
    const entries = deps.trail.of(gatewayId);
    if (entries.length === 0 && !view.get(gatewayId)) throw new AppError(404, 'not_found', `no rule and no audit trail for gateway ${gatewayId}`, 'id');
    res.json({
      gatewayId,
      entries: entries.map((event) => ({
        at: event.occurredAt,
        actor: event.actor,
        action: event.action,
        version: event.version,
        changedFields: event.changedFields,
        ...(event.reason === undefined ? {} : { reason: event.reason }),
        before: event.before,
        after: event.after,
        eventId: event.eventId,
      })),
    });
  });
}
