import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './processes';

const SCRIPT = path.join(__dirname, 'kafka-local.sh');

/** Runs the script with a data dir and port of its own; resolves with its output, whatever its exit code. */
function run(args: string[], env: Record<string, string>): Promise<string> {
  return new Promise((resolve) => {
    const scriptEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
    delete scriptEnv.KAFKA_BROKER_COUNT;
    execFile('bash', [SCRIPT, ...args], { env: scriptEnv }, (_error, stdout, stderr) => resolve(`${stdout}${stderr}`));
  });
}

/**
 * `start` records the node count in the data dir; `stop` and `status` without
 * --brokers read it. These runs start no broker: the record alone decides
 * which nodes they look for.
 */
describe('scripts/kafka-local.sh without --brokers', () => {
  let dataDir = '';
  let env: Record<string, string> = {};
  beforeEach(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'pgo-test-kafka-local-'));
    env = { KAFKA_PORT: String(await freePort()), KAFKA_DATA_DIR: dataDir };
  });
  afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

  test('When start recorded three nodes, then status and stop look for the three nodes of the cluster', async () => {
    writeFileSync(path.join(dataDir, 'broker-count'), '3\n');
    const port = Number(env.KAFKA_PORT);
    expect(await run(['status'], env)).toContain(`node 3 not running on 127.0.0.1:${port + 2}`);
    expect(await run(['stop'], env)).toContain(`not running on 127.0.0.1:${port},127.0.0.1:${port + 1},127.0.0.1:${port + 2}`);
  });

  test('When nothing was recorded, or --brokers says otherwise, then one broker is meant', async () => {
    const single = `not running on 127.0.0.1:${env.KAFKA_PORT}\n`;
    expect(await run(['status'], env)).toContain(single);
    writeFileSync(path.join(dataDir, 'broker-count'), '3\n');
    expect(await run(['status', '--brokers', '1'], env)).toContain(single);
  });
});
