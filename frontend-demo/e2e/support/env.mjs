// Where the browser tests find the gateway, its simulated AI service and the browser, and why
// they skip when something is missing (they never download a browser).
import { existsSync } from 'node:fs';

/** The running gateway that serves the built page, e.g. http://127.0.0.1:8080. */
export const SLUICE_URL = process.env.SLUICE_URL?.replace(/\/+$/, '') ?? '';
/** The gateway's simulated AI service with its `/__mock/*` test controls. */
export const MOCK_URL = process.env.MOCK_URL?.replace(/\/+$/, '') ?? '';
/** Debian's Chromium (`apt-get install -y chromium`). */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

function skipReason() {
  if (!SLUICE_URL || !MOCK_URL) {
    return 'browser tests skipped: set SLUICE_URL (a running gateway serving the built page) and MOCK_URL (its simulated AI service)';
  }
  if (!existsSync(CHROMIUM_PATH)) {
    return `browser tests skipped: no Chromium at ${CHROMIUM_PATH} (apt-get install -y chromium, or set CHROMIUM_PATH)`;
  }
  return false;
}

/** `false` when the browser tests can run, else the message `node:test` prints for the skip. */
export const SKIP = skipReason();
