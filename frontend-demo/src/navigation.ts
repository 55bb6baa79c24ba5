import { ref } from 'vue';

/** The screens that have an address, so a reload or the back button lands where the user was. */
export type Route =
  | { name: 'home' }
  | { name: 'chat'; conversationId: string }
  | { name: 'follow'; conversationId: string };

/** `#/chat/ID` and `#/follow/ID`; anything else is home. */
export function parseHash(hash: string): Route {
  const match = /^#\/(chat|follow)\/([^/]+)$/.exec(hash);
  if (match?.[1] && match[2]) {
    const conversationId = decodeURIComponent(match[2]);
    return match[1] === 'chat' ? { name: 'chat', conversationId } : { name: 'follow', conversationId };
  }
  return { name: 'home' };
}

/** The hash for a route (inverse of `parseHash`). */
export function routeHash(route: Route): string {
  return route.name === 'home' ? '#/' : `#/${route.name}/${encodeURIComponent(route.conversationId)}`;
}

/** The current route; a small hash router instead of vue-router, which this page does not need. */
export const route = ref<Route>(parseHash(window.location.hash));

window.addEventListener('hashchange', () => {
  route.value = parseHash(window.location.hash);
});

/** Goes to a screen and records it in the history. */
export function navigate(to: Route): void {
  route.value = to;
  const hash = routeHash(to);
  if (window.location.hash !== hash) window.location.hash = hash;
}
