import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { alive, commandLine, descendants, untilGone } from './support/process-table';

// The reaper (scripts/reaper.ts) as npm start, the test helpers and the
// benchmarks use it: a process hands it the pid of something that watches no
// IPC channel (here a long `sleep`), then dies without stopping it.
const ROOT = path.resolve(__dirname, '..');
/** The kernel closes the reaper's channel at once; the reaper checks every 100 ms whether SIGTERM has done its work. */
const REAPED_WITHIN_MS = 2_000;

interface Owner {
  child: ChildProcess;
  /** The sleeps it started, in order, once the reaper holds (or has released) them. */
  sleeps: number[];
  reaper: number;
}

/**
 * A stand-in for npm start, a jest worker or a benchmark: starts one `sleep`
 * per entry of `release`, hands each to the reaper as a group of its own,
 * then releases those marked true (as a normal stop does), prints the pids,
 * and waits to be killed.
 */
async function startOwner(release: boolean[]): Promise<Owner> {
  const script = `
    const { spawn } = require('node:child_process');
    const { reapOnExit } = require('./scripts/reaper');
    (async () => {
      const groups = [];
      for (const released of ${JSON.stringify(release)}) {
        const sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
        groups.push({ pid: sleeper.pid, released, reaping: await reapOnExit('a long sleep', [sleeper.pid]) });
      }
      for (const group of groups) if (group.released) await group.reaping.release();
      console.log('sleeps ' + groups.map((group) => group.pid).join(','));
    })();
    setInterval(() => undefined, 60000);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  owners.push(child);
  const sleeps = await new Promise<number[]>((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      const match = /^sleeps ([\d,]+)$/.exec(line);
      if (match?.[1]) resolve(match[1].split(',').map(Number));
    });
    child.once('exit', (code) => reject(new Error(`the owner exited (${code}) before it printed its sleeps`)));
  });
  const [reaper, ...others] = descendants(child.pid ?? 0).filter((pid) => commandLine(pid).includes('scripts/reaper.ts'));
  if (reaper === undefined || others.length > 0) throw new Error(`not one reaper below the owner: ${[reaper, ...others].join(', ')}`);
  leftovers.push(...sleeps, reaper);
  return { child, sleeps, reaper };
}

/** What a failed test leaves running is killed: only processes these tests started. */
const owners: ChildProcess[] = [];
const leftovers: number[] = [];
afterEach(() => {
  for (const owner of owners.splice(0)) if (owner.exitCode === null && owner.signalCode === null) owner.kill('SIGKILL');
  for (const pid of alive(leftovers.splice(0))) process.kill(pid, 'SIGKILL');
});

const untilReaped = (pids: number[], what: string) =>
  untilGone(pids, REAPED_WITHIN_MS, (left) => `${what}: pid ${left.join(', ')} still running ${REAPED_WITHIN_MS} ms after the owner was SIGKILLed`);

describe('the reaper', () => {
  test('When the process that handed it a pid is SIGKILLed, then the reaper stops that process within two seconds, and exits', async () => {
    const owner = await startOwner([false]);
    expect(alive(owner.sleeps)).toEqual(owner.sleeps);
    owner.child.kill('SIGKILL');
    await untilReaped(owner.sleeps, 'the sleep');
    await untilReaped([owner.reaper], 'the reaper');
  });

  test('When a group was released before its owner dies, then the reaper stops only the groups it still holds, and leaves the released process running', async () => {
    const owner = await startOwner([true, false]);
    const [released = 0, held = 0] = owner.sleeps;
    owner.child.kill('SIGKILL');
    await untilReaped([held], 'the sleep still held');
    // Once the reaper has exited it can stop nothing more.
    await untilReaped([owner.reaper], 'the reaper');
    expect(alive([released])).toEqual([released]);
  });

  test('When the last group is released by a process with nothing else to keep it running, then the process goes on after the release and exits with its own code', async () => {
    // As jest's global teardown: it releases the test broker's group, then must still set the run's exit code.
    const script = `
      const { spawn } = require('node:child_process');
      const { reapOnExit } = require('./scripts/reaper');
      (async () => {
        const sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
        sleeper.unref();
        const reaping = await reapOnExit('a long sleep', [sleeper.pid]);
        await reaping.release();
        process.kill(sleeper.pid);
        console.log('released');
        process.exitCode = 7;
      })();`;
    const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    owners.push(child);
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect({ output: output.trim(), code }).toEqual({ output: 'released', code: 7 });
  });
});
