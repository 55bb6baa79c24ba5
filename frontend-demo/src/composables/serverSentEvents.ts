// Helpers shared by the two streaming composables: both read JSON `data` from named SSE events
// and must tell a server-sent `event: error` apart from EventSource's own transport error.

/** A failure reported on a stream: the contract's `code` and the server's `message`. */
export interface StreamError {
  code: string;
  message: string;
}

/** Code for a stream that never opened (refused before the first event: 401, 409, 429, …). */
export const STREAM_REFUSED = 'stream_refused';
/** Code for a stream that opened and then dropped without a terminal event. */
export const STREAM_LOST = 'stream_lost';

/**
 * True for an `event: error` the server wrote, which carries `data`. EventSource also fires a
 * plain `error` Event (no `data`) when the connection fails or ends; that one means "transport".
 */
export function isServerSentError(event: Event): event is MessageEvent<string> {
  return typeof (event as Partial<MessageEvent>).data === 'string';
}

/** The JSON payload of an SSE event, or `null` when it is missing or not JSON. */
export function parseEventData<T>(event: Event): T | null {
  const data = (event as Partial<MessageEvent>).data;
  if (typeof data !== 'string') return null;
  try {
    return JSON.parse(data) as T;
  } catch {
    return null;
  }
}

/** The error a server-sent `error` event describes, with safe defaults for a malformed one. */
export function streamErrorFrom(event: MessageEvent<string>): StreamError {
  const data = parseEventData<Partial<StreamError>>(event);
  return {
    code: typeof data?.code === 'string' ? data.code : 'internal',
    message: typeof data?.message === 'string' ? data.message : '',
  };
}

/** The error to report for a transport failure, depending on whether the stream had opened. */
export function transportError(opened: boolean): StreamError {
  return opened
    ? { code: STREAM_LOST, message: 'The connection was lost before the stream finished' }
    : { code: STREAM_REFUSED, message: 'The server refused to open the stream' };
}
