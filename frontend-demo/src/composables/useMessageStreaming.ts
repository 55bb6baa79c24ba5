import { getCurrentScope, onScopeDispose, readonly, ref, toValue, watch, type MaybeRefOrGetter } from 'vue';
import { fetchMessages } from '../api/client';
import type { MessageCompleteEventData, MessageStatus, StoredMessage, TokenEventData } from '../api/types';
import { isServerSentError, parseEventData, streamErrorFrom, transportError, type StreamError } from './serverSentEvents';

/** Stored statuses plus the two that only exist in the page: still arriving, or failed to arrive. */
export type ChatMessageStatus = MessageStatus | 'streaming' | 'error';

/** One bubble of the chat. */
export interface ChatMessage {
  id: string;
  role: 'user' | 'assistant';
  content: string;
  status: ChatMessageStatus;
  /** Why an `error` bubble failed. */
  error?: StreamError;
}

/** Knobs for embedding the composable in another app. */
export interface MessageStreamingOptions {
  /** Load the stored history now and whenever the conversation id changes (default true). */
  loadHistory?: boolean;
}

/** Longest message the gateway accepts (`content` 1..=8000 characters). */
export const MAX_MESSAGE_CHARS = 8000;

let localIds = 0;
function localId(): string {
  localIds += 1;
  return `local-${localIds}`;
}

function fromStored(message: StoredMessage): ChatMessage {
  return { id: message.id, role: message.role, content: message.content, status: message.status };
}

/**
 * A chat on one conversation: the stored history plus an assistant bubble that grows token by
 * token over an EventSource on `messages-stream`.
 *
 * The stream is closed on `complete`, on `error`, on a transport failure and on unmount, and is
 * never reopened by itself: reopening would send (and store) the user's message a second time.
 */
export function useMessageStreaming(
  conversationId: MaybeRefOrGetter<string>,
  options: MessageStreamingOptions = {},
) {

  const messages = ref<ChatMessage[]>([]);
  const streaming = ref(false);
  const error = ref<StreamError | null>(null);
  const historyLoading = ref(false);
  const historyError = ref<unknown>(null);

  let source: EventSource | null = null;
  /** The bubble being streamed into, so unmount can mark the partial answer. */
  let bubbleInFlight: ChatMessage | null = null;
  let historyLoads = 0;

  function stop(): void {
    if (source !== null) {
      source.close();
      source = null;
    }
    bubbleInFlight = null;
    streaming.value = false;
  }

  /**
   * Replaces the bubbles with the stored history. Skipped while an answer streams, and `send`
   * waits for it, so a history fetched mid-stream never duplicates or drops the new pair.
   */
  async function loadHistory(): Promise<void> {
    if (source !== null) return;
    // Only the latest load may write: an older one can finish last when the id changes quickly.
    const load = ++historyLoads;
    historyLoading.value = true;
    historyError.value = null;
    try {
      const stored = await fetchMessages(toValue(conversationId));
      if (load === historyLoads) messages.value = stored.map(fromStored);
    } catch (caught) {
      if (load === historyLoads) historyError.value = caught;
    } finally {
      if (load === historyLoads) historyLoading.value = false;
    }
  }

  /**
   * Sends `content` and streams the answer into a new assistant bubble. Returns false (and sends
   * nothing) when the text is empty or too long, an answer is still streaming or history loading.
   */
  function send(content: string): boolean {
    const text = content.trim();
    if (text === '' || [...text].length > MAX_MESSAGE_CHARS) return false;
    if (source !== null || historyLoading.value) return false;

    error.value = null;
    messages.value.push(
      { id: localId(), role: 'user', content: text, status: 'completed' },
      { id: localId(), role: 'assistant', content: '', status: 'streaming' },
    );
    // Mutate the reactive copy (not the literal pushed above) so the view updates.
    const bubble = messages.value[messages.value.length - 1] as ChatMessage;
    bubbleInFlight = bubble;

    const url =
      `/api/conversations/${encodeURIComponent(toValue(conversationId))}` +
      `/messages-stream?content=${encodeURIComponent(text)}`;
    const stream = new EventSource(url);
    source = stream;
    streaming.value = true;
    let opened = false;
    const current = () => source === stream;

    const failBubble = (reason: StreamError) => {
      stop();
      bubble.status = 'error';
      bubble.error = reason;
      error.value = reason;
    };

    stream.addEventListener('open', () => {
      opened = true;
    });

    stream.addEventListener('token', (event) => {
      if (!current()) return;
      const data = parseEventData<TokenEventData>(event);
      if (typeof data?.content === 'string') bubble.content += data.content;
    });

    stream.addEventListener('complete', (event) => {
      if (!current()) return;
      const data = parseEventData<MessageCompleteEventData>(event);
      stop();
      // The stored message is the truth: it replaces whatever the tokens added up to.
      if (data !== null) {
        if (typeof data.message_id === 'string') bubble.id = data.message_id;
        if (typeof data.content === 'string') bubble.content = data.content;
      }
      bubble.status = 'completed';
    });

    stream.addEventListener('error', (event) => {
      if (!current()) return;
      failBubble(isServerSentError(event) ? streamErrorFrom(event) : transportError(opened));
    });

    return true;
  }

  /** Sends again the user message whose answer failed last, dropping the failed pair from view. */
  function retry(): boolean {
    const all = messages.value;
    const last = all[all.length - 1];
    const before = all[all.length - 2];
    if (source !== null || last?.status !== 'error' || before?.role !== 'user') return false;
    all.splice(all.length - 2, 2);
    return send(before.content);
  }

  /** Abandons a running answer: the gateway stores the partial text as `interrupted`. */
  function cancel(): void {
    const bubble = bubbleInFlight;
    stop();
    if (bubble && bubble.status === 'streaming') bubble.status = 'interrupted';
  }

  if (getCurrentScope()) onScopeDispose(cancel);

  if (options.loadHistory ?? true) {
    watch(
      () => toValue(conversationId),
      () => {
        cancel();
        messages.value = [];
        error.value = null;
        void loadHistory();
      },
      { immediate: true },
    );
  }

  return {
    messages: readonly(messages),
    streaming: readonly(streaming),
    error: readonly(error),
    historyLoading: readonly(historyLoading),
    historyError: readonly(historyError),
    send,
    retry,
    cancel,
    loadHistory,
  };
}
