// The simulated AI service's test controls (`/__mock/*`), so a test can break or pause it.
import { MOCK_URL } from './env.mjs';

async function call(method, path, body) {
  const response = await fetch(`${MOCK_URL}${path}`, {
    method,
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  if (!response.ok) throw new Error(`${method} ${path} → ${response.status}`);
  const text = await response.text();
  return text === '' ? null : JSON.parse(text);
}

/** Back to a healthy mock: no faults, nothing held. */
export const resetMock = () => call('POST', '/__mock/reset', {});
/**
 * `mode` is none|error|hang|slow|malformed|drop_mid_stream; `rate` 0..1 of calls affected;
 * `options` may limit the routes (`{ routes: ['generate'] }`) or set `slow_ms`.
 */
export const setFaults = (mode, rate, options = {}) => call('POST', '/__mock/faults', { mode, rate, ...options });
/** Chat streams pause after `afterTokens` tokens until `release()`. */
export const holdStreams = (afterTokens) => call('POST', '/__mock/hold', { after_tokens: afterTokens });
/** Lets every held chat stream go on (and stops holding new ones). */
export const releaseStreams = () => call('POST', '/__mock/release', {});
/** Calls received per route, streams open, held and cancelled by the caller. */
export const mockStats = () => call('GET', '/__mock/stats');

/** Polls the mock's stats until `predicate` holds; the mock has no push channel to await. */
export async function waitForStats(predicate, { timeoutMs = 15000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await mockStats();
    if (predicate(last)) return last;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`mock stats never matched; last: ${JSON.stringify(last)}`);
}
