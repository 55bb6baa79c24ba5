import { ApiError, NETWORK_ERROR_CODE, problemFromResponse } from './problem';

/**
 * The one place the app calls sluice over plain HTTP. Authentication rides on the HttpOnly
 * cookie set by sign-in (same origin), so no token is ever held in JavaScript; failures come
 * back as `ApiError` whatever went wrong.
 */
export async function apiFetch<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  let body: string | undefined;
  if (init.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(init.body);
  }
  let response: Response;
  try {
    response = await fetch(path, {
      method: init.method ?? 'GET',
      headers,
      body,
      credentials: 'same-origin',
    });
  } catch {
    throw new ApiError({ status: 0, code: NETWORK_ERROR_CODE, title: 'Network error' });
  }
  if (!response.ok) throw await problemFromResponse(response);
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}
