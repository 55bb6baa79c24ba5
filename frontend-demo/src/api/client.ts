import { apiFetch } from './http';
import type { ConversationSummary, Me, Scenario, StoredMessage } from './types';

/** `POST /api/auth/dev-login`: the response sets the HttpOnly auth cookie the rest relies on. */
export async function devLogin(username: string): Promise<void> {
  await apiFetch<unknown>('/api/auth/dev-login', { method: 'POST', body: { username } });
}

/** `GET /api/me`: who is signed in, or an `unauthorized` ApiError. */
export function fetchMe(): Promise<Me> {
  return apiFetch<Me>('/api/me');
}

/** `POST /api/scenarios`: searches passages (with fallbacks) and stores the scenario. */
export function createScenario(novelId: string, description: string): Promise<Scenario> {
  return apiFetch<Scenario>('/api/scenarios', {
    method: 'POST',
    body: { novel_id: novelId, description },
  });
}

/** `GET /api/conversations`: the caller's conversations, newest first. */
export async function listConversations(limit = 20): Promise<ConversationSummary[]> {
  const body = await apiFetch<unknown>(`/api/conversations?limit=${limit}`);
  return unwrapList<ConversationSummary>(body);
}

/** `GET /api/conversations/{id}/messages`: the stored history, oldest first. */
export async function fetchMessages(conversationId: string): Promise<StoredMessage[]> {
  const body = await apiFetch<unknown>(`/api/conversations/${encodeURIComponent(conversationId)}/messages`);
  return unwrapList<StoredMessage>(body);
}

/**
 * Lists are plain arrays in the contract; a paginated envelope (`{items|data|conversations|messages: […]}`)
 * is accepted too so a cursor added later does not break the page.
 */
function unwrapList<T>(body: unknown): T[] {
  if (Array.isArray(body)) return body as T[];
  if (typeof body === 'object' && body !== null) {
    for (const key of ['items', 'data', 'conversations', 'messages']) {
      const value = (body as Record<string, unknown>)[key];
      if (Array.isArray(value)) return value as T[];
    }
  }
  return [];
}
