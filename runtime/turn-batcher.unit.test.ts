import { createTurnBatcher } from './turn-batcher';

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('turn batcher', () => {
  test('When several calls come in one event-loop turn, then they are flushed together and each gets its own result', async () => {
    const flushed: number[][] = [];
    const double = createTurnBatcher(async (items: number[]) => {
      flushed.push(items);
      return items.map((item) => item * 2);
    });
    const results = await Promise.all([double(1), double(2), double(3)]);
    expect(results).toEqual([2, 4, 6]);
    expect(flushed).toEqual([[1, 2, 3]]);
    await double(4);
    expect(flushed).toEqual([[1, 2, 3], [4]]);
  });

  test('When a flush fails, then every call of that batch fails and the next batch is flushed on its own', async () => {
    let fail = true;
    const echo = createTurnBatcher(async (items: string[]) => {
      if (fail) throw new Error('redis down');
      return items;
    });
    const first = Promise.allSettled([echo('a'), echo('b')]);
    await tick();
    fail = false;
    expect((await first).map((outcome) => outcome.status)).toEqual(['rejected', 'rejected']);
    expect(await echo('c')).toBe('c');
  });
});
