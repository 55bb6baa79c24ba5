import { describe, expect, it } from 'vitest';
import { describeFailure, toUserFacing } from './errorText';
import { ApiError, parseRetryAfter, problemFromResponse } from './problem';

function problem(body: Record<string, unknown>, status: number, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/problem+json', ...headers },
  });
}

describe('problemFromResponse', () => {
  it('reads the problem+json fields and Retry-After', async () => {
    const error = await problemFromResponse(
      problem(
        { type: 'about:blank', title: 'Too Many Requests', status: 429, detail: 'slow down', code: 'rate_limited', request_id: 'r-1' },
        429,
        { 'Retry-After': '7' },
      ),
    );

    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 429, code: 'rate_limited', requestId: 'r-1', retryAfterSecs: 7 });
  });

  it('keeps validation field errors', async () => {
    const error = await problemFromResponse(
      problem(
        { code: 'validation_failed', status: 400, detail: 'description: must be 1..=4000 characters', errors: [{ field: 'description', message: 'too long' }] },
        400,
      ),
    );

    expect(error.fieldErrors).toEqual([{ field: 'description', message: 'too long' }]);
  });

  it('survives a body that is not JSON', async () => {
    const error = await problemFromResponse(
      new Response('<html>Bad Gateway</html>', { status: 502, statusText: 'Bad Gateway', headers: { 'X-Request-Id': 'r-2' } }),
    );

    expect(error).toMatchObject({ status: 502, code: 'http_502', requestId: 'r-2' });
  });
});

describe('parseRetryAfter', () => {
  it('accepts seconds and HTTP dates, rejects junk', () => {
    expect(parseRetryAfter('12')).toBe(12);
    expect(parseRetryAfter('Thu, 01 Jan 1970 00:00:30 GMT', 0)).toBe(30);
    expect(parseRetryAfter('soon')).toBeNull();
    expect(parseRetryAfter(null)).toBeNull();
  });
});

describe('describeFailure', () => {
  it('says when to retry a rate-limited request', () => {
    expect(describeFailure({ code: 'rate_limited', retryAfterSecs: 5 })).toBe('Too many requests — try again in 5 s');
    expect(describeFailure({ code: 'rate_limited' })).toBe('Too many requests — try again in a moment');
  });

  it('explains every AI failure the same way', () => {
    for (const code of ['ai_unavailable', 'upstream_timeout', 'upstream_error']) {
      expect(describeFailure({ code, detail: 'http://10.0.0.5:9000 refused' })).toBe(
        'The AI service is unavailable right now; try again in a moment',
      );
    }
  });

  it('shows the detail of a validation failure', () => {
    expect(describeFailure({ code: 'validation_failed', detail: 'content: must not be empty' })).toBe(
      'content: must not be empty',
    );
  });

  it('turns any thrown value into readable text', () => {
    expect(toUserFacing(new TypeError('x is undefined')).text).not.toContain('undefined');
    const fromApi = toUserFacing(new ApiError({ status: 401, code: 'unauthorized', requestId: 'r-3' }));
    expect(fromApi.requestId).toBe('r-3');
    expect(fromApi.text).toMatch(/sign in/);
  });
});
