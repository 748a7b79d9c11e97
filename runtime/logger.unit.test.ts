import { execFileSync } from 'node:child_process';
import path from 'node:path';

describe('createLogger', () => {
  test('When a service logs a line, then it is one JSON object naming the service and instance, with its time in ISO 8601 UTC', () => {
    // A process of its own: the logger writes to the process' stdout, flushed as the process exits.
    const before = Date.now();
    const stdout = execFileSync(process.execPath, ['--import', 'tsx', '-e', "require('./runtime/logger').createLogger('svc', 'info', 'i-1').info({ paymentId: 'p-1' }, 'hello')"], {
      cwd: path.join(__dirname, '..'),
      encoding: 'utf8',
    });
    const line = JSON.parse(stdout.trim()) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 30, service: 'svc', instance: 'i-1', paymentId: 'p-1', msg: 'hello' });
    expect(line.time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(Date.parse(String(line.time))).toBeGreaterThanOrEqual(before);
    expect(Date.parse(String(line.time))).toBeLessThanOrEqual(Date.now());
  });
});
