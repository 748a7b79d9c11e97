import type { KafkaMessage } from 'kafkajs';
import { settleByKey } from './kafka';

const message = (key: string | null, offset: number): KafkaMessage =>
  ({ key: key === null ? null : Buffer.from(key), value: Buffer.from('{}'), offset: String(offset), timestamp: '0', attributes: 0, headers: {} }) as KafkaMessage;

/** A handler whose calls the test finishes by hand, so what runs at once is visible. */
function heldHandler() {
  const started: string[] = [];
  const finish = new Map<string, (error?: Error) => void>();
  const handle = (m: KafkaMessage) =>
    new Promise<void>((resolve, reject) => {
      started.push(m.offset);
      finish.set(m.offset, (error) => (error ? reject(error) : resolve()));
    });
  return { started, finish, handle };
}
const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('settleByKey', () => {
  test('When a batch holds several keys, then different keys run at once and one key\'s messages one after another, in offset order', async () => {
    const { started, finish, handle } = heldHandler();
    const settled = settleByKey([message('a', 0), message('b', 1), message('a', 2), message(null, 3), message(null, 4)], handle);
    await tick();
    expect(started).toEqual(['0', '1', '3', '4']);
    finish.get('0')!();
    await tick();
    expect(started).toEqual(['0', '1', '3', '4', '2']);
    for (const offset of ['1', '2', '3', '4']) finish.get(offset)!();
    expect((await settled).size).toBe(0);
  });

  test('When a message fails, then it and the later messages of its key are reported failed and not handled; other keys go on', async () => {
    const { started, finish, handle } = heldHandler();
    const settled = settleByKey([message('a', 0), message('b', 1), message('a', 2)], handle);
    await tick();
    const redisDown = new Error('redis down');
    finish.get('0')!(redisDown);
    finish.get('1')!();
    const failures = await settled;
    expect(started).toEqual(['0', '1']);
    expect([...failures]).toEqual([
      [0, redisDown],
      [2, redisDown],
    ]);
  });
});
