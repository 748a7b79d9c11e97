import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import fc from 'fast-check';
import { isolatedNamespace } from './support/env';

// The patch npm ci applies to ioredis 5.11.1 (patches/ioredis+5.11.1.patch, docs/decisions/0020): a command whose
// arguments hold 512 characters or more is encoded into one Buffer instead of a string built per argument; a command
// whose arguments hold no nested array copies them instead of calling Array.prototype.flat.
// eslint-disable-next-line @typescript-eslint/no-require-imports -- ioredis' Command class is exported without its toWritable in the types
const Command = (require('ioredis/built/Command') as { default: new (name: string, args: unknown[]) => { args: unknown[]; toWritable(socket?: unknown): string | Buffer } }).default;

/** RESP as ioredis writes it unpatched: "*<n>\r\n" and "$<bytes>\r\n<argument>\r\n" per part (the name first). */
const resp = (name: string, args: readonly string[]) =>
  [name, ...args].reduce((text, part) => `${text}$${Buffer.byteLength(part)}\r\n${part}\r\n`, `*${args.length + 1}\r\n`);

describe('ioredis command encoding, as patched', () => {
  test('When a command is large, then it is one Buffer holding exactly the RESP bytes the unpatched string held', () => {
    // Multi-byte characters (é, €, emoji as surrogate pairs, a lone surrogate written as U+FFFD) make the byte count
    // differ from the length.
    const text = fc.string({ unit: fc.constantFrom('a', '"', '\r', '\n', 'é', '€', '😀', '\uD800', '0'), maxLength: 700 });
    fc.assert(
      // Half the runs carry a 512-character argument among the generated ones, so both encodings are exercised.
      fc.property(fc.array(text, { minLength: 1, maxLength: 12 }), fc.boolean(), (generated, large) => {
        const args = large ? [...generated.slice(0, 1), 'p'.repeat(512), ...generated.slice(1)] : generated;
        const written = new Command('evalsha', [...args]).toWritable();
        const expected = resp('evalsha', args);
        if (args.reduce((total, arg) => total + arg.length, 0) < 512) {
          expect(written).toBe(expected);
        } else {
          expect(Buffer.isBuffer(written)).toBe(true);
          expect((written as Buffer).equals(Buffer.from(expected, 'utf8'))).toBe(true);
        }
      }),
      { numRuns: 400 },
    );
  });

  test('When an argument is 10,000 bytes or more, then its length is written with every digit', () => {
    const big = 'x'.repeat(123_456);
    const written = new Command('set', ['k', big]).toWritable() as Buffer;
    expect(written.equals(Buffer.from(resp('set', ['k', big])))).toBe(true);
  });

  test('When arguments hold no nested array, then they are copied without Array.prototype.flat; nested ones are still flattened as before', () => {
    const flat = jest.spyOn(Array.prototype, 'flat');
    try {
      const plain = ['k', '1', 'x'.repeat(600)];
      const command = new Command('set', plain);
      expect(command.args).toEqual(plain);
      expect(command.args).not.toBe(plain);
      expect(flat).not.toHaveBeenCalled();
      expect(new Command('sadd', ['h', ['f1', 'v1'], 'f2', ['v2', ['deep']]]).args).toEqual(['h', 'f1', 'v1', 'f2', 'v2', 'deep']);
      expect(flat).toHaveBeenCalledTimes(1);
    } finally {
      flat.mockRestore();
    }
  });

  describe('on a real Redis, auto-pipelined as the services connect', () => {
    const { redisUrl, redisKeyPrefix } = isolatedNamespace();
    const redis = new Redis(redisUrl, { keyPrefix: redisKeyPrefix, enableAutoPipelining: true });
    afterAll(async () => {
      await redis.quit();
    });

    test('When large and small commands share one pipeline, then every value reads back as written', async () => {
      const values = Array.from({ length: 40 }, (_, index) => (index % 2 === 0 ? `small-${index}` : `${'€é😀"'.repeat(200 + index)}${index}`));
      const keys = values.map(() => randomUUID());
      // Issued in the same tick, so ioredis writes them in one pipeline: strings and Buffers mixed.
      await Promise.all(keys.map((key, index) => redis.set(key, values[index]!)));
      await expect(Promise.all(keys.map((key) => redis.get(key)))).resolves.toEqual(values);
      await redis.del(...keys);
    });

    test('When a script gets a large argument, then the script sees it byte for byte', async () => {
      const doc = JSON.stringify({ note: 'Zahlung über 1.000 € 😀', padding: 'x'.repeat(3_000) });
      const echoed = await redis.eval('return ARGV[2]', 0, 'first', doc, 'last');
      expect(echoed).toBe(doc);
    });
  });
});
