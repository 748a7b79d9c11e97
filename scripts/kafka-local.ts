// Starts and stops the local single-node Apache Kafka broker (KRaft, no Docker)
// through scripts/kafka-local.sh. Used by the jest globalSetup and `npm start`.
//
// The broker's identity (port, controller port, data dir, log file) comes only from
// the options, so a test broker and the default one can run side by side; every
// other KAFKA_* / JAVA_HOME variable of this process is passed on to the script.
import { execFile } from 'node:child_process';
import path from 'node:path';

const SCRIPT = path.join(__dirname, 'kafka-local.sh');

export interface LocalKafkaOptions {
  port: number;
  /** Defaults to port + 1. */
  controllerPort?: number;
  dataDir?: string;
  logFile?: string;
  /** Do not echo the script's output to stderr. */
  quiet?: boolean;
}

export interface LocalKafka {
  brokers: string;
  stop: () => Promise<void>;
}

function scriptEnv(options: LocalKafkaOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, KAFKA_PORT: String(options.port) };
  delete env.KAFKA_CONTROLLER_PORT;
  delete env.KAFKA_DATA_DIR;
  delete env.KAFKA_LOG_FILE;
  if (options.controllerPort !== undefined) env.KAFKA_CONTROLLER_PORT = String(options.controllerPort);
  if (options.dataDir !== undefined) env.KAFKA_DATA_DIR = options.dataDir;
  if (options.logFile !== undefined) env.KAFKA_LOG_FILE = options.logFile;
  return env;
}

function runScript(command: 'start' | 'stop', options: LocalKafkaOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'bash',
      [SCRIPT, command],
      { env: scriptEnv(options), maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          const status = error.code ?? error.signal ?? 'error';
          reject(new Error(`kafka-local.sh ${command} failed (port ${options.port}, exit ${status}):\n${stdout}${stderr}`));
        } else {
          resolve();
        }
      },
    );
    child.stdin?.end();
    if (!options.quiet) {
      child.stdout?.on('data', (chunk: Buffer) => process.stderr.write(chunk));
      child.stderr?.on('data', (chunk: Buffer) => process.stderr.write(chunk));
    }
  });
}

/** Starts the broker (or reuses one already running for these options) and waits until it answers. */
export async function startLocalKafka(options: LocalKafkaOptions): Promise<LocalKafka> {
  await runScript('start', options);
  return {
    brokers: `127.0.0.1:${options.port}`,
    stop: () => stopLocalKafka(options),
  };
}

/** Stops the broker for these options; resolves when it has exited (or was not running). */
export async function stopLocalKafka(options: LocalKafkaOptions): Promise<void> {
  await runScript('stop', options);
}
