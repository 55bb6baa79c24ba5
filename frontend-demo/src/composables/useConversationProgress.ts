import { getCurrentScope, onScopeDispose, readonly, ref, toValue, type MaybeRefOrGetter } from 'vue';
import type { CompleteEventData, ConversationErrorEventData, ProgressEventData } from '../api/types';
import {
  isServerSentError,
  parseEventData,
  streamErrorFrom,
  transportError,
  type StreamError,
} from './serverSentEvents';

/** Where a conversation's creation stands, as far as this page knows. */
export type ProgressStatus = 'idle' | 'connecting' | 'generating' | 'completed' | 'failed';

/** Knobs for embedding the composable in another app. */
export interface ConversationProgressOptions {
  /** Follow an existing conversation on `/events` instead of creating a new one. */
  conversationId?: string;
  /** Open the stream at once (default); with `false`, call `start()`. */
  immediate?: boolean;
  /** Times a dropped stream is resumed on `/events` once the conversation id is known (default 3). */
  maxResumes?: number;
}

/** Delay before the n-th resume (1-based): 1 s, 2 s, 4 s, … capped at 8 s. */
function resumeDelayMs(attempt: number): number {
  return Math.min(8000, 1000 * 2 ** (attempt - 1));
}

/**
 * Creates a conversation for a scenario and follows its generation over one EventSource on
 * `create-stream`, so the page shows live progress without polling.
 *
 * EventSource reconnects by itself when a stream ends; for `create-stream` that would create a
 * second conversation, so every stream is closed on `complete`, on `error`, on a transport
 * failure and when the owning component unmounts. A transport failure after the conversation id
 * is known resumes on `GET /api/conversations/{id}/events`, which never creates anything.
 */
export function useConversationProgress(
  scenarioId: MaybeRefOrGetter<string | null | undefined>,
  options: ConversationProgressOptions = {},
) {
  const maxResumes = options.maxResumes ?? 3;

  const progress = ref(0);
  const message = ref('');
  const status = ref<ProgressStatus>('idle');
  const error = ref<StreamError | null>(null);
  const conversationId = ref<string | null>(options.conversationId ?? null);

  let source: EventSource | null = null;
  let resumeTimer: ReturnType<typeof setTimeout> | null = null;
  let resumes = 0;

  function stop(): void {
    if (resumeTimer !== null) {
      clearTimeout(resumeTimer);
      resumeTimer = null;
    }
    if (source !== null) {
      source.close();
      source = null;
    }
  }

  function fail(reason: StreamError): void {
    stop();
    error.value = reason;
    status.value = 'failed';
  }

  function rememberConversation(id: unknown): void {
    if (conversationId.value === null && typeof id === 'string' && id !== '') conversationId.value = id;
  }

  function createUrl(scenario: string): string {
    return `/api/conversations/create-stream?scenario_id=${encodeURIComponent(scenario)}`;
  }

  function eventsUrl(conversation: string): string {
    return `/api/conversations/${encodeURIComponent(conversation)}/events`;
  }

  function open(url: string): void {
    const stream = new EventSource(url);
    source = stream;
    let opened = false;
    // A stale stream's late events must not touch the state of its replacement.
    const current = () => source === stream;

    stream.addEventListener('open', () => {
      opened = true;
    });

    stream.addEventListener('progress', (event) => {
      if (!current()) return;
      const data = parseEventData<ProgressEventData>(event);
      if (data === null) return;
      rememberConversation(data.conversation_id);
      if (typeof data.progress === 'number') {
        // Never move the bar backwards: a resumed stream restates the current value.
        progress.value = Math.max(progress.value, Math.min(100, Math.max(0, data.progress)));
      }
      if (typeof data.message === 'string') message.value = data.message;
      status.value = 'generating';
    });

    stream.addEventListener('complete', (event) => {
      if (!current()) return;
      const data = parseEventData<CompleteEventData>(event);
      rememberConversation(data?.conversation_id);
      stop();
      progress.value = 100;
      message.value = 'Conversation ready';
      status.value = 'completed';
    });

    stream.addEventListener('error', (event) => {
      if (!current()) return;
      if (isServerSentError(event)) {
        rememberConversation(parseEventData<ConversationErrorEventData>(event)?.conversation_id);
        fail(streamErrorFrom(event));
        return;
      }
      // Transport failure or the server ended the stream early: close before EventSource
      // retries on its own, then resume on /events if there is a conversation to resume.
      stop();
      const known = conversationId.value;
      if (known !== null && resumes < maxResumes) {
        resumes += 1;
        message.value = 'Connection lost — reconnecting…';
        resumeTimer = setTimeout(() => {
          resumeTimer = null;
          open(eventsUrl(known));
        }, resumeDelayMs(resumes));
        return;
      }
      fail(transportError(opened));
    });
  }

  /**
   * Opens the stream: follows `options.conversationId` if given, else creates a conversation for
   * the current scenario. Calling it again abandons the previous stream first (a new conversation).
   */
  function start(): void {
    stop();
    resumes = 0;
    progress.value = 0;
    error.value = null;
    status.value = 'connecting';
    message.value = 'Connecting…';
    if (options.conversationId) {
      conversationId.value = options.conversationId;
      open(eventsUrl(options.conversationId));
      return;
    }
    conversationId.value = null;
    const scenario = toValue(scenarioId);
    if (!scenario) {
      fail({ code: 'validation_failed', message: 'Choose a scenario first' });
      return;
    }
    open(createUrl(scenario));
  }

  /** Stops following (the conversation itself keeps generating on the server). */
  function close(): void {
    stop();
  }

  if (getCurrentScope()) onScopeDispose(stop);
  if (options.immediate ?? true) start();

  return {
    progress: readonly(progress),
    message: readonly(message),
    status: readonly(status),
    error: readonly(error),
    conversationId: readonly(conversationId),
    start,
    close,
  };
}
