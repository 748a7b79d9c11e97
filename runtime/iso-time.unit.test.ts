import { isoTime } from './iso-time';

describe('isoTime', () => {
  const builtin = (ms: number) => new Date(ms).toISOString();

  test('When given instants across years 0 to 9999, then it writes what toISOString writes', () => {
    // A fixed linear congruential sequence: the same instants every run, spread over the whole range.
    let seed = 42;
    const next = () => (seed = (seed * 48_271) % 2_147_483_647) / 2_147_483_647;
    const differing: string[] = [];
    for (let i = 0; i < 200_000; i++) {
      const ms = -62_167_219_200_000 + Math.floor(next() * (253_402_300_800_000 + 62_167_219_200_000));
      if (isoTime(ms) !== builtin(ms)) differing.push(`${ms}: ${isoTime(ms)} instead of ${builtin(ms)}`);
    }
    expect(differing).toEqual([]);
  });

  test('When given the edges of days, months, leap days and centuries, then it writes what toISOString writes', () => {
    const edges = ['1970-01-01T00:00:00.000Z', '1999-12-31T23:59:59.999Z', '2000-02-29T12:00:00.000Z', '2024-02-29T23:59:59.999Z', '2100-02-28T23:59:59.999Z', '2100-03-01T00:00:00.000Z', '2400-02-29T00:00:00.000Z', '0000-01-01T00:00:00.000Z', '0009-09-09T09:09:09.009Z', '0099-12-31T23:59:59.999Z', '9999-12-31T23:59:59.999Z'];
    for (const edge of edges) {
      const ms = Date.parse(edge);
      for (const near of [ms - 1, ms, ms + 1]) expect(isoTime(near)).toBe(builtin(near));
    }
  });

  test('When the instant is outside years 0 to 9999 or not whole, then it is the builtin that writes it, errors included', () => {
    for (const ms of [-62_167_219_200_001, -8.64e15, 253_402_300_800_000, 8.64e15, 1_796_123_681_973.5]) expect(isoTime(ms)).toBe(builtin(ms));
    expect(() => isoTime(Number.NaN)).toThrow(RangeError);
    expect(() => isoTime(8.64e15 + 1)).toThrow(RangeError);
  });
});
