import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { effectScope, ref } from 'vue';
import { ApiError } from '../api/problem';
import type { StoredMessage } from '../api/types';
import { FakeEventSource } from '../testing/fakeEventSource';
import { useMessageStreaming } from './useMessageStreaming';

const HISTORY: StoredMessage[] = [
  { id: 'm1', role: 'user', content: 'Hello', status: 'completed', created_at: '2025-01-01T00:00:00Z' },
  { id: 'm2', role: 'assistant', content: 'Hi there', status: 'completed', created_at: '2025-01-01T00:00:01Z' },
];

function jsonResponse(body: unknown, status = 200): Response {
  const type = status < 400 ? 'application/json' : 'application/problem+json';
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': type } });
}

/** Runs the composable inside an effect scope and waits for its history to load. */
async function mount(conversationId = 'c1') {
  const scope = effectScope();
  const api = scope.run(() => useMessageStreaming(ref(conversationId)));
  if (!api) throw new Error('scope did not run');
  await vi.waitFor(() => expect(api.historyLoading.value).toBe(false));
  return { ...api, unmount: () => scope.stop() };
}

let fetchMock: ReturnType<typeof vi.fn>;

beforeEach(() => {
  FakeEventSource.reset();
  vi.stubGlobal('EventSource', FakeEventSource);
  fetchMock = vi.fn(async () => jsonResponse(HISTORY));
  vi.stubGlobal('fetch', fetchMock);
});

afterEach(() => {
  vi.unstubAllGlobals();
});

describe('useMessageStreaming', () => {
  it('loads the stored history', async () => {
    const chat = await mount('c1');

    expect(fetchMock).toHaveBeenCalledWith('/api/conversations/c1/messages', expect.anything());
    expect(chat.messages.value.map((m) => m.content)).toEqual(['Hello', 'Hi there']);
    expect(chat.historyError.value).toBeNull();
  });

  it('keeps a history failure as an ApiError', async () => {
    fetchMock.mockResolvedValueOnce(
      jsonResponse({ code: 'not_found', title: 'Not Found', status: 404, detail: 'no such conversation' }, 404),
    );

    const chat = await mount('c1');

    expect(chat.historyError.value).toBeInstanceOf(ApiError);
    expect((chat.historyError.value as ApiError).code).toBe('not_found');
  });

  it('opens messages-stream with the content and grows the bubble with each token', async () => {
    const chat = await mount('c1');

    expect(chat.send('  What next? & more  ')).toBe(true);

    const stream = FakeEventSource.latest();
    expect(stream.url).toBe('/api/conversations/c1/messages-stream?content=What%20next%3F%20%26%20more');
    expect(chat.streaming.value).toBe(true);
    const bubble = () => chat.messages.value[chat.messages.value.length - 1];
    expect(chat.messages.value[2]).toMatchObject({ role: 'user', content: 'What next? & more' });
    expect(bubble()).toMatchObject({ role: 'assistant', content: '', status: 'streaming' });

    stream.serverOpens();
    stream.serverSends('token', { content: 'Once' });
    expect(bubble()?.content).toBe('Once');
    stream.serverSends('token', { content: ' upon' });
    stream.serverSends('token', { content: ' a time' });
    expect(bubble()?.content).toBe('Once upon a time');
    expect(bubble()?.status).toBe('streaming');
  });

  it('replaces the bubble with the stored message on complete and closes', async () => {
    const chat = await mount();
    chat.send('Tell me');
    const stream = FakeEventSource.latest();
    stream.serverOpens();
    stream.serverSends('token', { content: 'Partial' });

    stream.serverSends('complete', { message_id: 'm9', content: 'The whole stored answer' });

    const bubble = chat.messages.value[chat.messages.value.length - 1];
    expect(bubble).toMatchObject({ id: 'm9', content: 'The whole stored answer', status: 'completed' });
    expect(chat.streaming.value).toBe(false);
    expect(stream.closeCalls).toBe(1);
    expect(FakeEventSource.instances).toHaveLength(1);
  });

  it('turns the bubble into an error bubble on a server error event and closes', async () => {
    const chat = await mount();
    chat.send('Tell me');
    const stream = FakeEventSource.latest();
    stream.serverOpens();
    stream.serverSends('token', { content: 'Par' });

    stream.serverSends('error', { code: 'upstream_error', message: 'AI failed' });

    const bubble = chat.messages.value[chat.messages.value.length - 1];
    expect(bubble?.status).toBe('error');
    expect(bubble?.error).toEqual({ code: 'upstream_error', message: 'AI failed' });
    expect(chat.error.value).toEqual({ code: 'upstream_error', message: 'AI failed' });
    expect(chat.streaming.value).toBe(false);
    expect(stream.closeCalls).toBe(1);
  });

  it('closes on a transport error and never reopens (that would resend the message)', async () => {
    const chat = await mount();
    chat.send('Tell me');
    const stream = FakeEventSource.latest();
    stream.serverOpens();
    stream.serverSends('token', { content: 'Par' });

    stream.transportFails();

    expect(stream.closeCalls).toBe(1);
    expect(chat.error.value?.code).toBe('stream_lost');
    expect(FakeEventSource.instances).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(FakeEventSource.instances).toHaveLength(1);
  });

  it('reports a stream refused before opening', async () => {
    const chat = await mount();
    chat.send('Tell me');

    FakeEventSource.latest().transportFails();

    expect(chat.error.value?.code).toBe('stream_refused');
  });

  it('closes the stream on unmount and marks the partial answer interrupted', async () => {
    const chat = await mount();
    chat.send('Tell me');
    const stream = FakeEventSource.latest();
    stream.serverOpens();
    stream.serverSends('token', { content: 'Half' });

    chat.unmount();

    expect(stream.closeCalls).toBe(1);
    const bubble = chat.messages.value[chat.messages.value.length - 1];
    expect(bubble).toMatchObject({ content: 'Half', status: 'interrupted' });
  });

  it('refuses to send empty text or while an answer is streaming', async () => {
    const chat = await mount();

    expect(chat.send('   ')).toBe(false);
    expect(chat.send('x'.repeat(8001))).toBe(false);
    expect(FakeEventSource.instances).toHaveLength(0);

    expect(chat.send('first')).toBe(true);
    expect(chat.send('second')).toBe(false);
    expect(FakeEventSource.instances).toHaveLength(1);
  });

  it('retries a failed answer with the same user message', async () => {
    const chat = await mount();
    chat.send('Tell me');
    FakeEventSource.latest().serverSends('error', { code: 'ai_unavailable', message: 'down' });

    expect(chat.retry()).toBe(true);

    expect(FakeEventSource.instances).toHaveLength(2);
    expect(FakeEventSource.latest().url).toContain('content=Tell%20me');
    expect(chat.messages.value.map((m) => m.content)).toEqual(['Hello', 'Hi there', 'Tell me', '']);
    expect(chat.error.value).toBeNull();
  });
});
