import { RejectMessage } from '../../runtime/kafka';
import { createLogger } from '../../runtime/logger';
import { resultMessage, type CommandResult, type GatewayResult, type ResultMessage } from '../../topics/schemas';
import type { Outcome } from '../state/payment';
import { handleResultMessage, outcomeOf } from './consumer';

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

  test('When the message carries its own occurredAt, then the outcome is still timed by the `at` given (the clock of the instance applying it)', () => {
    expect(outcomeOf(gatewayResult({ outcome: 'success' }), AT)?.at).toBe(AT);
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

describe('handleResultMessage', () => {
  const clock = () => new Date(AT);

  function given(applied: 'applied' | 'unchanged' | 'unknown-payment' | 'unknown-attempt') {
    const logger = createLogger('consumer-test', 'silent');
    const critical = jest.spyOn(logger, 'critical');
    const applyOutcome = jest.fn(async (_paymentId: string, _outcome: Outcome) => applied);
    return { handle: handleResultMessage(applyOutcome, clock, logger), applyOutcome, critical };
  }

  test('When a result maps to an outcome, then it is applied to its payment at the clock time', async () => {
    const { handle, applyOutcome } = given('applied');
    await handle(commandResult('cancel', 'cancelled'));
    expect(applyOutcome.mock.calls).toEqual([['pay-1', { kind: 'cancel-confirmed', attemptId: 'att-1', at: AT }]]);
  });

  test('When the outcome changes nothing (a duplicate), then the message is accepted', async () => {
    const { handle } = given('unchanged');
    await expect(handle(gatewayResult({ outcome: 'success' }))).resolves.toBeUndefined();
  });

  test.each(['unknown-payment', 'unknown-attempt'] as const)(
    'When the result is for an %s, then the message is rejected with that reason (parked: it may mean money moved)',
    async (why) => {
      const { handle } = given(why);
      const handled = handle(gatewayResult({ outcome: 'success' }));
      await expect(handled).rejects.toBeInstanceOf(RejectMessage);
      await expect(handled).rejects.toMatchObject({ reason: why });
    },
  );

  test.each(['not-found', 'already-succeeded'] as const)(
    'When a command result has no outcome (a compensation answered %s), then it is not applied, logged at critical and rejected for reconciliation',
    async (result) => {
      const { handle, applyOutcome, critical } = given('applied');
      const handled = handle(commandResult('compensate', result));
      await expect(handled).rejects.toMatchObject({ name: 'RejectMessage', reason: 'needs-reconciliation' });
      expect(applyOutcome).not.toHaveBeenCalled();
      expect(critical).toHaveBeenCalledTimes(1);
      expect(critical.mock.calls[0]?.[0]).toMatchObject({ paymentId: 'pay-1', attemptId: 'att-1', gatewayId: 'gw-a' });
    },
  );
});
