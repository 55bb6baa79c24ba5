import { reactive } from 'vue';
import { fetchMe } from './api/client';
import { ApiError } from './api/problem';
import type { Me } from './api/types';

/**
 * Who is signed in, shared by every screen: the auth cookie is HttpOnly, so asking `/api/me`
 * is the only way the page can know, and any `unauthorized` answer means the cookie is gone.
 */
export const session = reactive({
  me: null as Me | null,
  /** False until the first `/api/me` answer, so the page does not flash the sign-in form. */
  checked: false,
});

/** Asks the gateway who the cookie belongs to; signed out on `unauthorized`, unchanged otherwise. */
export async function refreshSession(): Promise<void> {
  try {
    session.me = await fetchMe();
  } catch (error) {
    noteFailure(error);
  } finally {
    session.checked = true;
  }
}

/** Call from any failed request: an `unauthorized` answer sends the page back to sign-in. */
export function noteFailure(error: unknown): void {
  if (error instanceof ApiError && error.code === 'unauthorized') session.me = null;
}

/** Shows the sign-in form again (the old cookie is replaced by the next sign-in). */
export function switchUser(): void {
  session.me = null;
}
