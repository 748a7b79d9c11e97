import { randomUUID } from 'node:crypto';
import { Counter, type Registry } from 'prom-client';
import { isoTime } from '../runtime/iso-time';
import type { Logger } from '../runtime/logger';
import type { OutgoingMessage, Publisher } from '../runtime/kafka';
import type { TopicNames } from '../topics/names';
import type { AttemptCommand, AttemptRequested, CommandResult, GatewayRequestMessage, GatewayResult } from '../topics/schemas';
import type { GatewayAdapter } from './sandbox';

export interface WorkerDeps {
  gatewayId: string;
  adapter: GatewayAdapter;
  publisher: Publisher;
  topics: TopicNames;
  clock: () => Date;
  logger: Logger;
  registry: Registry;
  /** On drain, how long waiting attempts may still take before they are abandoned unanswered. */
  drainGraceMs: number;
}

export interface GatewayWorker {
  /** `requestTimestampMs`: the request message's Kafka timestamp (epoch ms), echoed in the answer as `requestedAt`. */
  handle(message: GatewayRequestMessage, requestTimestampMs?: number): Promise<void>;
  /**
   * Resolves once every attempt taken so far has been answered, or, after
   * `drainGraceMs`, abandoned without an answer (the orchestrator's timeouts
   * cover those). Never waits for hung or late attempts longer than that.
   */
  drain(): Promise<void>;
}

/**
 * The gateway side of the contract: takes attempt requests and commands from
 * the gateway's own topic, asks the PSP adapter, and publishes results and
 * command results on the results topic, keyed by payment id.
 * Requests are processed concurrently (a PSP call is slow; the partition must
 * not wait for it) and tracked, so shutdown can wait a little for those in
 * flight. Commands are answered before their offset is committed: if the
 * publish fails, kafkajs redelivers the command, and the adapter answers a
 * repeated command the same way.
 */
export function createGatewayWorker(deps: WorkerDeps): GatewayWorker {
  const { gatewayId, adapter, publisher, topics, clock, logger, registry, drainGraceMs } = deps;
  const inFlight = new Set<Promise<void>>();
  const answered = new Counter({
    name: 'gateway_attempts_answered_total',
    help: 'Attempt answers by outcome (success, failure, no-answer) and reason (the failure reason, or why there was no answer); a duplicated answer counts twice',
    labelNames: ['gateway', 'outcome', 'reason'],
    registers: [registry],
  });
  const commands = new Counter({
    name: 'gateway_commands_total',
    help: 'Cancel and compensate commands by command and result (ignored: a hung attempt, not answered)',
    labelNames: ['gateway', 'command', 'result'],
    registers: [registry],
  });
  const resent = new Counter({
    name: 'gateway_answer_publish_retries_total',
    help: 'Answers whose publish failed and was tried again (a broker lost, leaders moving): the PSP answered; only the message is late',
    labelNames: ['gateway'],
    registers: [registry],
  });
  resent.inc({ gateway: gatewayId }, 0);
  /** Set when a drain's grace is over: answers still failing to publish are given up. */
  let givingUp = false;
  const envelope = <T extends string>(type: T) => ({ eventId: randomUUID(), type, occurredAt: isoTime(clock().getTime()), schemaVersion: 1 as const });

  /**
   * Publishes an answer until Kafka takes it: the PSP has already decided, and
   * an answer lost here would look like the gateway's silence (a timeout, a
   * failover, the money moved twice). Backs off from 200 ms to 5 s between
   * tries; gives up only when a drain's grace is over, with a critical log.
   */
  const publishAnswer = async (messages: OutgoingMessage[], ids: Pick<AttemptRequested, 'paymentId' | 'attemptId'>) => {
    for (let tries = 1; ; tries++) {
      try {
        await publisher.publish(topics.gatewayResults, messages);
        return;
      } catch (error) {
        if (givingUp) {
          logger.critical({ err: error, ...ids, gatewayId, tries }, 'answer not published before shutdown: the orchestrator will ask to cancel it after its timeout');
          throw error;
        }
        resent.inc({ gateway: gatewayId });
        logger.warn({ err: error, ...ids, gatewayId, tries }, 'publishing an answer failed; trying again');
        await new Promise((resolve) => setTimeout(resolve, Math.min(5_000, 200 * 2 ** (tries - 1))));
      }
    }
  };

  const answer = async (request: AttemptRequested, requestTimestampMs: number | undefined) => {
    // When the request reached Kafka: the orchestrator starts the gateway's latency there, not at its own decision.
    const requested = requestTimestampMs !== undefined && Number.isFinite(requestTimestampMs) && requestTimestampMs > 0 ? { requestedAt: isoTime(requestTimestampMs) } : {};
    // Fields on each line rather than a child logger: building a child per attempt cost more than the lines.
    const ids = { paymentId: request.paymentId, attemptId: request.attemptId, gatewayId };
    const result = await adapter.process(request);
    if (result.outcome === 'no-answer') {
      answered.inc({ gateway: gatewayId, outcome: result.outcome, reason: result.why });
      logger.warn(Object.assign(ids, { outcome: result.outcome, why: result.why }), 'attempt left unanswered');
      return;
    }
    // Object.assign with the optional parts as further sources, not `{ ...envelope(), key, ...optional }`: a key that a
    // literal adds after a spread, or that a spread adds, is a slow runtime call in Node 20's V8 (docs/benchmarks/efficiency.md).
    const messages = Array.from({ length: result.deliveries }, (): GatewayResult =>
      Object.assign(
        envelope('gateway.result'),
        { paymentId: request.paymentId, attemptId: request.attemptId, gatewayId, outcome: result.outcome },
        result.outcome === 'failure' ? { reasonCode: result.reasonCode } : { gatewayReference: result.gatewayReference },
        requested,
      ),
    );
    await publishAnswer(
      messages.map((value) => ({ key: request.paymentId, value })),
      request,
    );
    const reason = result.outcome === 'failure' ? result.reasonCode : '';
    answered.inc({ gateway: gatewayId, outcome: result.outcome, reason }, result.deliveries);
    logger.info(Object.assign(ids, { outcome: result.outcome, reasonCode: result.outcome === 'failure' ? result.reasonCode : undefined, deliveries: result.deliveries }), 'attempt answered');
  };

  const onCommand = async (command: AttemptCommand) => {
    const { paymentId, attemptId } = command;
    const outcome = adapter.command(command);
    commands.inc({ gateway: gatewayId, command: command.command, result: outcome });
    const fields = { paymentId, attemptId, gatewayId, command: command.command, reason: command.reason, result: outcome };
    if (outcome === 'ignored') {
      logger.warn(fields, 'command ignored: the attempt is hung');
      return;
    }
    const message: CommandResult = Object.assign(envelope('attempt.command-result'), { command: command.command, paymentId, attemptId, gatewayId, result: outcome });
    // Not retried here: the command's offset is committed only after this, so kafkajs delivers it again.
    await publisher.publish(topics.gatewayResults, [{ key: paymentId, value: message }]);
    logger.info(fields, 'command answered');
  };

  return {
    async handle(message, requestTimestampMs) {
      if (message.gatewayId !== gatewayId) {
        logger.warn({ paymentId: message.paymentId, attemptId: message.attemptId, gatewayId: message.gatewayId }, 'message for another gateway ignored');
        return;
      }
      if (message.type === 'attempt.command') return onCommand(message);
      const work: Promise<void> = answer(message, requestTimestampMs)
        .catch((error: unknown) => logger.error({ err: error, paymentId: message.paymentId, attemptId: message.attemptId, gatewayId }, 'failed to answer attempt'))
        .finally(() => inFlight.delete(work));
      inFlight.add(work);
    },
    async drain() {
      if (inFlight.size === 0) return;
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<true>((resolve) => {
        timer = setTimeout(() => resolve(true), drainGraceMs);
      });
      const settled = Promise.all([...inFlight]).then(() => false as const);
      const timedOut = await Promise.race([settled, graceOver]);
      clearTimeout(timer);
      if (!timedOut) return;
      givingUp = true;
      const abandoned = adapter.abandonPending();
      logger.warn({ gatewayId, abandoned, drainGraceMs }, 'attempts still waiting at shutdown abandoned unanswered');
      await Promise.all([...inFlight]);
    },
  };
}
