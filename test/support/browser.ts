import { chromium, type Browser } from 'playwright-core';
import { ensureDebianPackages } from './debian';

/** Debian's Chromium, installed on first use (the project fetches no browser of its own). */
const CHROMIUM = '/usr/bin/chromium';

/** A headless Chromium for the operator page tests, with the flags a container without a session bus needs. */
export async function launchChromium(): Promise<Browser> {
  await ensureDebianPackages(['chromium'], [CHROMIUM]);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    timeout: 30_000,
  });
}
