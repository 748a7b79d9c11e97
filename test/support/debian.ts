import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const INSTALL_SCRIPT = path.resolve(__dirname, '../../scripts/debian-install.sh');
/** Only the first install on a machine is slow (package lists, downloads); it gets its own generous bound. */
const INSTALL_TIMEOUT_MS = 300_000;

/**
 * Installs the Debian packages that bring `binaries`, if any of them is
 * missing, through the project's own set-up script (CI runs as root). Tests
 * that drive a real tool (Chromium, Prometheus, Alertmanager) call it in
 * their beforeAll.
 */
export async function ensureDebianPackages(packages: readonly string[], binaries: readonly string[]): Promise<void> {
  if (binaries.every((binary) => existsSync(binary))) return;
  const started = Date.now();
  await promisify(execFile)('bash', [INSTALL_SCRIPT, ...packages], { timeout: INSTALL_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 });
  const missing = binaries.filter((binary) => !existsSync(binary));
  if (missing.length > 0) throw new Error(`installed ${packages.join(', ')} but ${missing.join(', ')} is missing`);
  process.stderr.write(`installed ${packages.join(', ')} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}
