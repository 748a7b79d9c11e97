// The patch npm ci applies to sonic-boom 4.2.1, pino's destination (patches/sonic-boom+4.2.1.patch,
// docs/decisions/0020): a line appended to a chunk does not measure the whole chunk again. Measuring it
// flattened the growing string on every line, so a 16 KB chunk of short lines allocated about 30 times its size.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';

describe('sonic-boom, as patched', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(tmpdir(), 'sonic-boom-'))));
  afterEach(() => {
    jest.restoreAllMocks();
    rmSync(dir, { recursive: true, force: true });
  });

  test('When lines gather in a chunk, then only each new line is measured, and the file gets every line in order', () => {
    const file = path.join(dir, 'out.log');
    const destination = pino.destination({ dest: file, sync: true, minLength: 8192 });
    const line = (i: number) => `{"msg":"payment accepted","n":${i},"paymentId":"c9a3b0f9-409d-42c6-b9d3-01efd924032d"}\n`;
    const measured: number[] = [];
    const byteLength = Buffer.byteLength.bind(Buffer);
    jest.spyOn(Buffer, 'byteLength').mockImplementation((value, encoding) => {
      if (typeof value === 'string') measured.push(value.length);
      return byteLength(value, encoding);
    });
    for (let i = 0; i < 50; i++) destination.write(line(i));
    expect(Math.max(...measured)).toBeLessThanOrEqual(line(49).length);
    jest.restoreAllMocks();
    destination.flushSync();
    destination.end();
    expect(readFileSync(file, 'utf8')).toBe(Array.from({ length: 50 }, (_, i) => line(i)).join(''));
  });
});
