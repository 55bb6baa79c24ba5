/** One invalid field of a `validation_failed` problem. */
export interface FieldError {
  field: string;
  message: string;
}

/**
 * A failed API call, carrying what sluice's problem+json body (RFC 9457) said, so the page can
 * explain the failure in words instead of a status number.
 */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly title: string;
  readonly detail: string;
  readonly requestId: string | null;
  /** Whole seconds from `Retry-After`, when the server sent one (429). */
  readonly retryAfterSecs: number | null;
  readonly fieldErrors: FieldError[];

  constructor(init: {
    status: number;
    code: string;
    title?: string;
    detail?: string;
    requestId?: string | null;
    retryAfterSecs?: number | null;
    fieldErrors?: FieldError[];
  }) {
    super(init.detail || init.title || init.code);
    this.name = 'ApiError';
    this.status = init.status;
    this.code = init.code;
    this.title = init.title ?? '';
    this.detail = init.detail ?? '';
    this.requestId = init.requestId ?? null;
    this.retryAfterSecs = init.retryAfterSecs ?? null;
    this.fieldErrors = init.fieldErrors ?? [];
  }
}

/** Code used when the server could not be reached at all. */
export const NETWORK_ERROR_CODE = 'network';

/** `Retry-After` as whole seconds; the HTTP-date form is converted relative to now. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | null {
  if (value === null || value.trim() === '') return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return null;
  return Math.max(0, Math.ceil((date - now) / 1000));
}

function asString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function asFieldErrors(value: unknown): FieldError[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((item: unknown) => {
    if (typeof item !== 'object' || item === null) return [];
    const { field, message } = item as Record<string, unknown>;
    return typeof field === 'string' && typeof message === 'string' ? [{ field, message }] : [];
  });
}

/** Builds an `ApiError` from a non-2xx response, whatever its body turned out to be. */
export async function problemFromResponse(response: Response): Promise<ApiError> {
  let body: Record<string, unknown> = {};
  try {
    const parsed: unknown = await response.json();
    if (typeof parsed === 'object' && parsed !== null) body = parsed as Record<string, unknown>;
  } catch {
    // Not JSON (a proxy's HTML page, an empty body): the status alone has to do.
  }
  return new ApiError({
    status: response.status,
    code: asString(body.code) ?? `http_${response.status}`,
    title: asString(body.title) ?? response.statusText,
    detail: asString(body.detail),
    requestId: asString(body.request_id) ?? response.headers.get('x-request-id'),
    retryAfterSecs: parseRetryAfter(response.headers.get('retry-after')),
    fieldErrors: asFieldErrors(body.errors),
  });
}
