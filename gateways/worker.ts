import { randomUUID } from 'node:crypto';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../runtime/logger';
import type { Publisher } from '../runtime/kafka';
import type { TopicNames } from '../topics/names';
import type { AttemptCommand, AttemptRequested, GatewayRequestMessage, GatewayResult } from '../topics/schemas';
import type { GatewayAdapter } from './sandbox';

export interface WorkerDeps {
  gatewayId: string;
  adapter: GatewayAdapter;
  publisher: Publisher;
  topics: TopicNames;
  clock: () => Date;
  logger: Logger;
  registry: Registry;
}

/**
 * The gateway side of the contract: takes attempt requests and commands from
 * the gateway's own topic, asks the PSP adapter, and publishes the result.
 * Requests are processed concurrently (a PSP call is slow; the partition must
 * not wait for it) and tracked, so shutdown can wait for those in flight.
 */
export function createGatewayWorker({ gatewayId, adapter, publisher, topics, clock, logger, registry }: WorkerDeps) {
  const inFlight = new Set<Promise<void>>();
  const answered = new Counter({
    name: 'gateway_attempts_answered_total',
    help: 'Attempts this gateway answered, by outcome (success, failure, no-answer)',
    labelNames: ['gateway', 'outcome', 'reason'],
    registers: [registry],
  });
  const commands = new Counter({
    name: 'gateway_commands_received_total',
    help: 'Cancel and compensate commands received, by command',
    labelNames: ['gateway', 'command'],
    registers: [registry],
  });

  const answer = async (request: AttemptRequested) => {
    const log = logger.child({ paymentId: request.paymentId, attemptId: request.attemptId, gatewayId });
    const result = await adapter.process(request);
    answered.inc({ gateway: gatewayId, outcome: result.outcome, reason: result.outcome === 'failure' ? result.reasonCode : '' });
    if (result.outcome === 'no-answer') {
      log.warn('sandbox left the attempt unanswered');
      return;
    }
    const message: GatewayResult = {
      eventId: randomUUID(),
      type: 'gateway.result',
      occurredAt: clock().toISOString(),
      schemaVersion: 1,
      paymentId: request.paymentId,
      attemptId: request.attemptId,
      gatewayId,
      outcome: result.outcome,
      ...(result.outcome === 'failure' ? { reasonCode: result.reasonCode } : { gatewayReference: result.gatewayReference }),
    };
    await publisher.publish(topics.gatewayResults, [{ key: request.paymentId, value: message }]);
    log.info({ outcome: result.outcome, reasonCode: message.reasonCode }, 'attempt answered');
  };

  const onCommand = (command: AttemptCommand) => {
    commands.inc({ gateway: gatewayId, command: command.command });
    logger.warn({ paymentId: command.paymentId, attemptId: command.attemptId, gatewayId, command: command.command, reason: command.reason }, 'command received');
  };

  return {
    async handle(message: GatewayRequestMessage): Promise<void> {
      if (message.gatewayId !== gatewayId) {
        logger.warn({ paymentId: message.paymentId, attemptId: message.attemptId, gatewayId: message.gatewayId }, 'message for another gateway ignored');
        return;
      }
      if (message.type === 'attempt.command') return onCommand(message);
      const work: Promise<void> = answer(message)
        .catch((error: unknown) => logger.error({ err: error, paymentId: message.paymentId, attemptId: message.attemptId, gatewayId }, 'failed to answer attempt'))
        .finally(() => inFlight.delete(work));
      inFlight.add(work);
    },
    /** Resolves once every attempt taken so far has been answered (or given up). */
    async drain(): Promise<void> {
      await Promise.all([...inFlight]);
    },
  };
}
