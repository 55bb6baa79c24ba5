import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { effectScope, ref } from 'vue';
import { FakeEventSource } from '../testing/fakeEventSource';
import { useConversationProgress, type ConversationProgressOptions } from './useConversationProgress';

/** Runs the composable inside an effect scope, as a component would; `unmount` disposes it. */
function mount(scenarioId: string | null, options?: ConversationProgressOptions) {
  const scope = effectScope();
  const api = scope.run(() => useConversationProgress(ref(scenarioId), options));
  if (!api) throw new Error('scope did not run');
  return { ...api, unmount: () => scope.stop() };
}

beforeEach(() => {
  FakeEventSource.reset();
  vi.stubGlobal('EventSource', FakeEventSource);
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

describe('useConversationProgress', () => {
  it('opens exactly one create-stream for the scenario', () => {
    const view = mount('scen 1/ä');

    expect(FakeEventSource.instances).toHaveLength(1);
    expect(FakeEventSource.latest().url).toBe(
      '/api/conversations/create-stream?scenario_id=scen%201%2F%C3%A4',
    );
    expect(view.status.value).toBe('connecting');
  });

  it('moves the bar on progress events and never backwards', () => {
    const view = mount('s1');
    const stream = FakeEventSource.latest();
    stream.serverOpens();

    stream.serverSends('progress', { conversation_id: 'c1', progress: 0, message: 'Queued' });
    expect(view.conversationId.value).toBe('c1');
    expect(view.status.value).toBe('generating');

    stream.serverSends('progress', { conversation_id: 'c1', progress: 40, message: 'Writing' });
    expect(view.progress.value).toBe(40);
    expect(view.message.value).toBe('Writing');

    stream.serverSends('progress', { conversation_id: 'c1', progress: 30, message: 'Still writing' });
    expect(view.progress.value).toBe(40);
    expect(view.message.value).toBe('Still writing');
  });

  it('ignores an event whose data is not JSON', () => {
    const view = mount('s1');
    const stream = FakeEventSource.latest();

    stream.serverSends('progress', '{not json');

    expect(view.progress.value).toBe(0);
    expect(view.status.value).toBe('connecting');
    expect(view.error.value).toBeNull();
  });

  it('completes at 100 and closes the stream so it cannot reconnect', () => {
    const view = mount('s1');
    const stream = FakeEventSource.latest();
    stream.serverOpens();
    stream.serverSends('progress', { conversation_id: 'c1', progress: 60, message: 'Almost' });

    stream.serverSends('complete', { conversation_id: 'c1', status: 'completed', message_count: 2 });

    expect(view.status.value).toBe('completed');
    expect(view.progress.value).toBe(100);
    expect(view.conversationId.value).toBe('c1');
    expect(stream.closeCalls).toBe(1);
    vi.runAllTimers();
    expect(FakeEventSource.instances).toHaveLength(1);
  });

  it('reports a server-sent error event and closes the stream', () => {
    const view = mount('s1');
    const stream = FakeEventSource.latest();
    stream.serverOpens();

    stream.serverSends('error', { conversation_id: 'c9', code: 'ai_unavailable', message: 'AI down' });

    expect(view.status.value).toBe('failed');
    expect(view.error.value).toEqual({ code: 'ai_unavailable', message: 'AI down' });
    expect(view.conversationId.value).toBe('c9');
    expect(stream.closeCalls).toBe(1);
    vi.runAllTimers();
    expect(FakeEventSource.instances).toHaveLength(1);
  });

  it('treats a refused stream as a transport error and never opens another', () => {
    const view = mount('s1');
    const stream = FakeEventSource.latest();

    stream.transportFails();

    expect(view.status.value).toBe('failed');
    expect(view.error.value?.code).toBe('stream_refused');
    expect(stream.closeCalls).toBe(1);
    vi.runAllTimers();
    expect(FakeEventSource.instances).toHaveLength(1);
  });

  it('resumes a dropped stream on /events, never on create-stream', () => {
    const view = mount('s1');
    const first = FakeEventSource.latest();
    first.serverOpens();
    first.serverSends('progress', { conversation_id: 'c1', progress: 20, message: 'Working' });

    first.transportFails();

    expect(first.closeCalls).toBe(1);
    expect(FakeEventSource.instances).toHaveLength(1);
    expect(view.status.value).toBe('generating');
    vi.advanceTimersByTime(1000);
    expect(FakeEventSource.instances).toHaveLength(2);
    const resumed = FakeEventSource.latest();
    expect(resumed.url).toBe('/api/conversations/c1/events');

    resumed.serverOpens();
    resumed.serverSends('complete', { conversation_id: 'c1', status: 'completed', message_count: 2 });
    expect(view.status.value).toBe('completed');
    expect(FakeEventSource.instances.filter((s) => s.url.includes('create-stream'))).toHaveLength(1);
  });

  it('gives up after the allowed resumes', () => {
    const view = mount('s1', { maxResumes: 1 });
    const first = FakeEventSource.latest();
    first.serverOpens();
    first.serverSends('progress', { conversation_id: 'c1', progress: 20, message: 'Working' });
    first.transportFails();
    vi.advanceTimersByTime(1000);
    const resumed = FakeEventSource.latest();
    resumed.serverOpens();

    resumed.transportFails();

    expect(view.status.value).toBe('failed');
    expect(view.error.value?.code).toBe('stream_lost');
    expect(resumed.closeCalls).toBe(1);
    vi.runAllTimers();
    expect(FakeEventSource.instances).toHaveLength(2);
  });

  it('closes the stream on unmount and cancels a pending resume', () => {
    const view = mount('s1');
    const stream = FakeEventSource.latest();
    stream.serverOpens();
    stream.serverSends('progress', { conversation_id: 'c1', progress: 10, message: 'Start' });

    view.unmount();
    expect(stream.closeCalls).toBe(1);

    const again = mount('s2');
    const second = FakeEventSource.latest();
    second.serverSends('progress', { conversation_id: 'c2', progress: 10, message: 'Start' });
    second.transportFails();
    again.unmount();
    vi.runAllTimers();
    expect(FakeEventSource.instances).toHaveLength(2);
  });

  it('follows an existing conversation without creating one', () => {
    const view = mount(null, { conversationId: 'c7' });

    expect(FakeEventSource.latest().url).toBe('/api/conversations/c7/events');
    expect(view.conversationId.value).toBe('c7');
  });

  it('waits for start() when not immediate, and needs a scenario', () => {
    const view = mount(null, { immediate: false });
    expect(FakeEventSource.instances).toHaveLength(0);
    expect(view.status.value).toBe('idle');

    view.start();

    expect(FakeEventSource.instances).toHaveLength(0);
    expect(view.status.value).toBe('failed');
    expect(view.error.value?.code).toBe('validation_failed');
  });
});
