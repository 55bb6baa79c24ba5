// Where the browser tests find the gateway, its simulated AI service and the browser, and why
// they skip when something is missing (they never download a browser). With E2E_REQUIRED=1
// (set by e2e/run.sh) a missing piece fails the run instead: a skipped acceptance test proves nothing.
import { existsSync } from 'node:fs';

/** The running gateway that serves the built page, e.g. http://127.0.0.1:8080. */
export const SLUICE_URL = process.env.SLUICE_URL?.replace(/\/+$/, '') ?? '';
/** The gateway's simulated AI service with its `/__mock/*` test controls. */
export const MOCK_URL = process.env.MOCK_URL?.replace(/\/+$/, '') ?? '';
/** Debian's Chromium (`apt-get install -y chromium`). */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** What the browser tests lack to run, or `null`. */
function missing() {
  if (!SLUICE_URL || !MOCK_URL) {
    return 'set SLUICE_URL (a running gateway serving the built page) and MOCK_URL (its simulated AI service)';
  }
  if (!existsSync(CHROMIUM_PATH)) {
    return `no Chromium at ${CHROMIUM_PATH} (apt-get install -y chromium, or set CHROMIUM_PATH)`;
  }
  return null;
}

const lack = missing();
if (lack && ['1', 'true'].includes(process.env.E2E_REQUIRED ?? '')) {
  throw new Error(`browser tests required (E2E_REQUIRED) but cannot run: ${lack}`);
}

/** `false` when the browser tests can run, else the message `node:test` prints for the skip. */
export const SKIP = lack ? `browser tests skipped: ${lack}` : false;
