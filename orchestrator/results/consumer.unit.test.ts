import { RejectMessage } from '../../runtime/kafka';
import { createLogger } from '../../runtime/logger';
import { resultMessage, type CommandResult, type GatewayResult, type ResultMessage } from '../../topics/schemas';
import type { Outcome } from '../state/payment';
import { gatewayLatencyMs } from './apply-outcome';
import { answeredAt, handleResultMessage, handleUnreadableResult, outcomeOf } from './consumer';

const AT = '2024-05-01T12:00:30.000Z';

/** A gateway result as it arrives on the topic (parsed by the contract's own schema). */
function gatewayResult(fields: Pick<GatewayResult, 'outcome'> & Partial<GatewayResult>): ResultMessage {
  return resultMessage.parse({
    eventId: 'ev-1',
    type: 'gateway.result',
    occurredAt: '2024-05-01T12:00:29.000Z',
    schemaVersion: 1,
    paymentId: 'pay-1',
    attemptId: 'att-1',
    gatewayId: 'gw-a',
    ...fields,
  });
}

/** A command result as it arrives on the topic. */
function commandResult(command: CommandResult['command'], result: CommandResult['result']): ResultMessage {
  return resultMessage.parse({
    eventId: 'ev-2',
    type: 'attempt.command-result',
    occurredAt: '2024-05-01T12:00:29.000Z',
    schemaVersion: 1,
    paymentId: 'pay-1',
    attemptId: 'att-1',
    gatewayId: 'gw-a',
    command,
    result,
  });
}

describe('outcomeOf: gateway results', () => {
  test('When a gateway reports success, then the outcome is a success of that attempt at the time given', () => {
    expect(outcomeOf(gatewayResult({ outcome: 'success', gatewayReference: 'psp-123' }), AT)).toEqual({ kind: 'success', attemptId: 'att-1', at: AT });
  });

  test('When the answer says when its request reached Kafka, then the outcome carries it (health latency starts there)', () => {
    expect(outcomeOf(gatewayResult({ outcome: 'success', requestedAt: '2026-11-30T11:00:00.000Z' }), AT)).toEqual({ kind: 'success', attemptId: 'att-1', at: AT, requestedAt: '2026-11-30T11:00:00.000Z' });
  });

  test('When a gateway reports a failure with a code, then the outcome is a failure carrying that code for the state machine to classify', () => {
    expect(outcomeOf(gatewayResult({ outcome: 'failure', reasonCode: 'insufficient_funds' }), AT)).toEqual({
      kind: 'failure',
      attemptId: 'att-1',
      reasonCode: 'insufficient_funds',
      at: AT,
    });
    expect(outcomeOf(gatewayResult({ outcome: 'failure', reasonCode: 'gateway_error' }), AT)).toMatchObject({ kind: 'failure', reasonCode: 'gateway_error' });
  });

  test('When a gateway reports a failure without a code, then the outcome is a failure with no code (final, by the reason table)', () => {
    expect(outcomeOf(gatewayResult({ outcome: 'failure' }), AT)).toEqual({ kind: 'failure', attemptId: 'att-1', reasonCode: undefined, at: AT });
  });

  test('When the message carries its own occurredAt, then the outcome is still timed by the `at` given (answeredAt decides it)', () => {
    expect(outcomeOf(gatewayResult({ outcome: 'success' }), AT)?.at).toBe(AT);
  });
});

describe('gatewayLatencyMs: the gateway health latency (results/apply-outcome.ts)', () => {
  const attempt = { dispatchedAt: '2026-11-30T11:00:00.000Z' };
  test('When the answer says when its request reached Kafka, then latency starts there, not at our dispatch decision', () => {
    // The request waited 3 s in the outbox (a killed instance's leftovers sent by the relay): not the gateway's time.
    expect(gatewayLatencyMs(attempt, { at: '2026-11-30T11:00:03.200Z', requestedAt: '2026-11-30T11:00:03.000Z' })).toBe(200);
  });
  test('When it does not say, or says a time before our decision or after its own answer (clocks apart), then latency runs from our dispatch decision', () => {
    expect(gatewayLatencyMs(attempt, { at: '2026-11-30T11:00:00.250Z' })).toBe(250);
    expect(gatewayLatencyMs(attempt, { at: '2026-11-30T11:00:00.250Z', requestedAt: '2026-11-30T10:59:59.000Z' })).toBe(250);
    expect(gatewayLatencyMs(attempt, { at: '2026-11-30T11:00:00.250Z', requestedAt: '2026-11-30T11:00:09.000Z' })).toBe(250);
  });
});

describe('answeredAt: when a gateway answered', () => {
  const broker = Date.parse('2024-05-01T12:00:29.500Z');
  const ourClock = new Date('2024-05-01T12:00:45.000Z');

  test('When the answer reached Kafka long before we read it, then it is timed by the broker, never by our clock', () => {
    expect(answeredAt(broker, undefined, ourClock)).toBe('2024-05-01T12:00:29.500Z');
  });

  test("When the gateway's own time is earlier than the broker's, then the gateway's time counts (it is not charged for publishing late)", () => {
    expect(answeredAt(broker, '2024-05-01T12:00:29.000Z', ourClock)).toBe('2024-05-01T12:00:29.000Z');
  });

  test("When the gateway's clock runs ahead of the broker's, then the broker's time bounds it", () => {
    expect(answeredAt(broker, '2024-05-01T12:05:00.000Z', ourClock)).toBe('2024-05-01T12:00:29.500Z');
  });

  test('When the message has no usable broker timestamp, then our clock is the fallback', () => {
    expect(answeredAt(Number.NaN, undefined, ourClock)).toBe(ourClock.toISOString());
  });
});

describe('the results contract: harmless variations a gateway may send', () => {
  test('When occurredAt has no zone offset, then it is read as UTC and the result is accepted', () => {
    expect(gatewayResult({ outcome: 'success', occurredAt: '2026-11-30T11:00:00.000' }).occurredAt).toBe('2026-11-30T11:00:00.000Z');
    expect(gatewayResult({ outcome: 'success', occurredAt: '2026-11-30T11:00:00' }).occurredAt).toBe('2026-11-30T11:00:00.000Z');
  });

  test('When occurredAt has an offset, then it is normalised to UTC', () => {
    expect(gatewayResult({ outcome: 'success', occurredAt: '2026-11-30T12:00:00.000+01:00' }).occurredAt).toBe('2026-11-30T11:00:00.000Z');
  });

  test('When the result carries fields the contract does not know, then they are ignored and the result is accepted', () => {
    const parsed = resultMessage.parse({ ...gatewayResult({ outcome: 'success' }), pspTrace: 'abc', extra: { nested: true } });
    expect(parsed).not.toHaveProperty('pspTrace');
    expect(parsed).toMatchObject({ outcome: 'success', paymentId: 'pay-1' });
  });

  test('When occurredAt is not a time at all, then the contract refuses it', () => {
    expect(resultMessage.safeParse({ ...gatewayResult({ outcome: 'success' }), occurredAt: 'yesterday' }).success).toBe(false);
  });

  test('When occurredAt is already in the normal UTC form, then it is kept, and a day the calendar does not have is refused', () => {
    expect(gatewayResult({ outcome: 'success', occurredAt: '2024-02-29T23:59:59.999Z' }).occurredAt).toBe('2024-02-29T23:59:59.999Z');
    for (const day of ['2026-02-29T00:00:00.000Z', '2026-04-31T00:00:00.000Z', '2026-11-30T24:00:00.000Z']) {
      expect(resultMessage.safeParse({ ...gatewayResult({ outcome: 'success' }), occurredAt: day }).success).toBe(false);
    }
  });
});

describe('outcomeOf: command results', () => {
  test.each<[CommandResult['command'], CommandResult['result'], string, Outcome['kind'] | undefined]>([
    ['cancel', 'cancelled', 'a cancel confirmation', 'cancel-confirmed'],
    ['cancel', 'not-found', 'a cancel confirmation (the gateway never saw it, so it cannot pay it)', 'cancel-confirmed'],
    ['cancel', 'compensated', 'a cancel confirmation (the money moved and came back: the gateway will not pay it)', 'cancel-confirmed'],
    ['cancel', 'already-succeeded', 'a success (too late to cancel: the money moved)', 'success'],
    ['compensate', 'compensated', 'a compensation confirmation', 'compensation-confirmed'],
    ['compensate', 'cancelled', 'a compensation confirmation (voided before the money moved)', 'compensation-confirmed'],
    ['compensate', 'not-found', 'nothing: a person must reconcile it', undefined],
    ['compensate', 'already-succeeded', 'nothing: the money moved and was not given back, so a person must reconcile it', undefined],
  ])('When a %s command is answered %s, then it means %s', (command, result, _meaning, kind) => {
    const outcome = outcomeOf(commandResult(command, result), AT);
    if (kind === undefined) expect(outcome).toBeUndefined();
    else expect(outcome).toEqual({ kind, attemptId: 'att-1', at: AT });
  });

  test('When a cancel is confirmed, the gateway never saw the attempt, or it already gave the money back, then all mean it will not pay: the same cancel-confirmed outcome', () => {
    const confirmed = outcomeOf(commandResult('cancel', 'cancelled'), AT);
    expect(outcomeOf(commandResult('cancel', 'not-found'), AT)).toEqual(confirmed);
    expect(outcomeOf(commandResult('cancel', 'compensated'), AT)).toEqual(confirmed);
  });

  test('When a compensation is done or the payment was voided, then both confirm the compensation: the same compensation-confirmed outcome', () => {
    expect(outcomeOf(commandResult('compensate', 'cancelled'), AT)).toEqual(outcomeOf(commandResult('compensate', 'compensated'), AT));
  });

  test('When a cancel comes too late (the money moved), then it is a success, so a late success is never dropped', () => {
    expect(outcomeOf(commandResult('cancel', 'already-succeeded'), AT)).toEqual({ kind: 'success', attemptId: 'att-1', at: AT });
  });
});

const BROKER_MS = Date.parse('2024-05-01T12:00:29.500Z');

describe('handleResultMessage', () => {
  const clock = () => new Date(AT);

  function given(applied: 'applied' | 'unchanged' | 'unknown-payment' | 'unknown-attempt') {
    const logger = createLogger('consumer-test', 'silent');
    const critical = jest.spyOn(logger, 'critical');
    const applyOutcome = jest.fn(async (_paymentId: string, _outcome: Outcome) => applied);
    return { handle: handleResultMessage(applyOutcome, clock, logger), applyOutcome, critical };
  }

  test('When a result maps to an outcome, then it is applied to its payment, timed by when it reached Kafka and decided at the clock time', async () => {
    const { handle, applyOutcome } = given('applied');
    await handle(commandResult('cancel', 'cancelled'), { timestampMs: BROKER_MS });
    expect(applyOutcome.mock.calls).toEqual([['pay-1', { kind: 'cancel-confirmed', attemptId: 'att-1', at: '2024-05-01T12:00:29.000Z', now: AT }]]);
  });

  test('When the outcome changes nothing (a duplicate), then the message is accepted', async () => {
    const { handle } = given('unchanged');
    await expect(handle(gatewayResult({ outcome: 'success' }), { timestampMs: BROKER_MS })).resolves.toBeUndefined();
  });

  test.each(['unknown-payment', 'unknown-attempt'] as const)(
    'When the result is for an %s, then the message is rejected with that reason (parked: it may mean money moved)',
    async (why) => {
      const { handle } = given(why);
      const handled = handle(gatewayResult({ outcome: 'success' }), { timestampMs: BROKER_MS });
      await expect(handled).rejects.toBeInstanceOf(RejectMessage);
      await expect(handled).rejects.toMatchObject({ reason: why });
    },
  );

  test.each(['not-found', 'already-succeeded'] as const)(
    'When a command result has no outcome (a compensation answered %s), then it is not applied, logged at critical and rejected for reconciliation',
    async (result) => {
      const { handle, applyOutcome, critical } = given('applied');
      const handled = handle(commandResult('compensate', result), { timestampMs: BROKER_MS });
      await expect(handled).rejects.toMatchObject({ name: 'RejectMessage', reason: 'needs-reconciliation' });
      expect(applyOutcome).not.toHaveBeenCalled();
      expect(critical).toHaveBeenCalledTimes(1);
      expect(critical.mock.calls[0]?.[0]).toMatchObject({ paymentId: 'pay-1', attemptId: 'att-1', gatewayId: 'gw-a' });
    },
  );
});

describe('handleUnreadableResult: a message that fails the contract', () => {
  const clock = () => new Date(AT);
  const meta = { partition: 3, offset: '41', timestampMs: BROKER_MS };

  function given(applied: 'applied' | 'unchanged' | 'unknown-payment' | 'unknown-attempt') {
    const logger = createLogger('consumer-test', 'silent');
    const critical = jest.spyOn(logger, 'critical');
    const applyOutcome = jest.fn(async (_paymentId: string, _outcome: Outcome) => applied);
    return { handle: handleUnreadableResult(applyOutcome, 'gateway.results', clock, logger), applyOutcome, critical };
  }

  test('When it names a known payment and attempt, then the attempt gets an unreadable outcome linked to its dead letter, logged at critical, and the message is parked as unreadable-result', async () => {
    const { handle, applyOutcome, critical } = given('applied');
    const handled = handle({ type: 'gateway.result', paymentId: 'pay-1', attemptId: 'att-1', gatewayId: 'gw-a', outcome: 'maybe' }, 'outcome: Invalid option', meta);
    await expect(handled).rejects.toMatchObject({ name: 'RejectMessage', reason: 'unreadable-result' });
    expect(applyOutcome.mock.calls).toEqual([
      [
        'pay-1',
        { kind: 'unreadable', attemptId: 'att-1', at: '2024-05-01T12:00:29.500Z', now: AT, deadLetter: 'gateway.results:3:41', detail: 'outcome: Invalid option' },
      ],
    ]);
    expect(critical.mock.calls[0]?.[0]).toMatchObject({ paymentId: 'pay-1', attemptId: 'att-1', deadLetter: 'gateway.results:3:41' });
  });

  test.each(['unknown-payment', 'unknown-attempt'] as const)('When it names an %s, then it is parked as plain schema noise', async (why) => {
    const { handle } = given(why);
    await expect(handle({ paymentId: 'pay-x', attemptId: 'att-x', outcome: 'maybe' }, 'outcome: Invalid option', meta)).resolves.toBeUndefined();
  });

  test('When it names no payment and attempt, then nothing is applied (parked as schema noise)', async () => {
    const { handle, applyOutcome } = given('applied');
    await expect(handle({ hello: 'world' }, 'type: Invalid input', meta)).resolves.toBeUndefined();
    await expect(handle('just a string', 'Invalid input', meta)).resolves.toBeUndefined();
    expect(applyOutcome).not.toHaveBeenCalled();
  });
});
