import { ApiError, NETWORK_ERROR_CODE } from './problem';

/** What the page shows for a failure: a sentence for a person, plus the id support can look up. */
export interface UserFacingError {
  text: string;
  requestId: string | null;
}

/** The fields of a failure that decide its wording; both `ApiError`s and stream errors have them. */
export interface ErrorFacts {
  code: string;
  detail?: string;
  retryAfterSecs?: number | null;
}

const AI_UNAVAILABLE = 'The AI service is unavailable right now; try again in a moment';

const FIXED_TEXT: Record<string, string> = {
  ai_unavailable: AI_UNAVAILABLE,
  upstream_timeout: AI_UNAVAILABLE,
  upstream_error: AI_UNAVAILABLE,
  unauthorized: 'You are not signed in (or your session expired) — please sign in again',
  forbidden: 'You are not allowed to do that',
  csrf_rejected: 'The request was refused because it did not come from this page; reload and try again',
  not_found: 'Not found — it may not exist, or it belongs to someone else',
  payload_too_large: 'That is too long to send',
  conversation_not_ready: 'This conversation is still being generated; wait until it is ready',
  too_many_streams: 'Too many live streams are open — close another tab or wait for one to finish',
  service_unavailable: 'The service is temporarily unavailable; try again in a moment',
  internal: 'Something went wrong on our side; try again, and quote the request id if it keeps happening',
  [NETWORK_ERROR_CODE]: 'Cannot reach the server; check your connection and try again',
  stream_refused:
    'The server refused to open the live stream (signed out, too many requests or too many open streams); try again in a moment',
  stream_lost: 'The connection to the server was lost; try again',
};

/** Turns a failure's code into the sentence the page shows (never a raw status or stack). */
export function describeFailure(facts: ErrorFacts): string {
  if (facts.code === 'rate_limited') {
    return facts.retryAfterSecs != null
      ? `Too many requests — try again in ${facts.retryAfterSecs} s`
      : 'Too many requests — try again in a moment';
  }
  if (facts.code === 'validation_failed') {
    return facts.detail || 'Some of what you entered is not valid';
  }
  return FIXED_TEXT[facts.code] ?? (facts.detail || 'Something went wrong; try again');
}

/** Any thrown value → what the page shows. */
export function toUserFacing(error: unknown): UserFacingError {
  if (error instanceof ApiError) {
    return {
      text: describeFailure({
        code: error.code,
        detail: error.detail || error.title,
        retryAfterSecs: error.retryAfterSecs,
      }),
      requestId: error.requestId,
    };
  }
  return { text: describeFailure({ code: 'internal' }), requestId: null };
}
