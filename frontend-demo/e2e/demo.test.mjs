// Browser tests of the demo page against a running gateway (SLUICE_URL) and its simulated AI
// service (MOCK_URL). One file on purpose: the tests change the mock's global state (faults,
// holds), so they must run one after another, which node:test does within a file.
//   SLUICE_URL=http://127.0.0.1:8080 MOCK_URL=http://127.0.0.1:8090 npm run test:e2e
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdir, stat } from 'node:fs/promises';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  createScenario,
  lastAnswer,
  openNewConversation,
  openPage,
  readRecording,
  recordInPage,
  sendMessage,
  signIn,
  uniqueUser,
  waitForLastAnswer,
} from './support/browser.mjs';
import { SKIP, SLUICE_URL } from './support/env.mjs';
import { holdStreams, releaseStreams, resetMock, setFaults, waitForStats } from './support/mock.mjs';

const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url));
const AI_UNAVAILABLE = /The AI service is unavailable right now; try again in a moment/;
/** What the mock puts in its failure details on purpose; the page must never show it. */
const LEAK_CANARY = 'mock-leak-canary';
const TEST_TIMEOUT_MS = 120000;

/** The stored messages of a conversation, read with the page's own cookie. */
async function storedMessages(page, conversationId) {
  const response = await page.request.get(`${SLUICE_URL}/api/conversations/${conversationId}/messages`);
  assert.equal(response.status(), 200, 'GET messages');
  const body = await response.json();
  return Array.isArray(body) ? body : body.items;
}

describe('sluice demo page', { skip: SKIP, timeout: TEST_TIMEOUT_MS }, () => {
  /** Each test gets a fresh browser and a healthy mock, and leaves the mock healthy. */
  let session;
  beforeEach(async () => {
    await resetMock();
    session = await openPage();
  });
  afterEach(async () => {
    await session?.close();
    await releaseStreams().catch(() => {});
    await resetMock();
  });

  test('conversation creation shows progress to 100 % over one event stream, no polling, then the chat', async () => {
    const { page } = session;
    await signIn(page);
    await createScenario(page);

    const requests = [];
    page.on('request', (request) => {
      requests.push({ url: new URL(request.url()), method: request.method(), type: request.resourceType() });
    });
    await recordInPage(page, 'progress', { selector: '[data-testid="progress-bar"]', attributes: ['aria-valuenow'] });

    const conversationId = await openNewConversation(page);

    const values = (await readRecording(page, 'progress')).map((entry) => Number(entry['aria-valuenow']));
    assert.ok(values.length > 0, 'the progress bar was never shown');
    assert.equal(values.at(-1), 100, `the bar ends at 100 (saw ${values.join(', ')})`);
    assert.ok(values.some((v) => v > 0 && v < 100), `the bar advances through intermediate values (saw ${values.join(', ')})`);
    for (let i = 1; i < values.length; i += 1) {
      assert.ok(values[i] >= values[i - 1], `the bar never moves backwards (saw ${values.join(', ')})`);
    }

    const streams = requests.filter(
      (r) => r.type === 'eventsource' || r.url.pathname.endsWith('/create-stream') || r.url.pathname.endsWith('/events'),
    );
    assert.equal(streams.length, 1, `exactly one event stream (saw ${streams.map((r) => r.url.pathname).join(', ')})`);
    assert.equal(streams[0].url.pathname, '/api/conversations/create-stream');
    assert.ok(streams[0].url.searchParams.get('scenario_id'), 'the stream names the scenario');

    const polls = requests.filter(
      (r) =>
        r.url.pathname.endsWith('/status') ||
        (r.method === 'GET' && r.url.pathname === `/api/conversations/${conversationId}`),
    );
    assert.deepEqual(
      polls.map((r) => r.url.pathname),
      [],
      'no status polling while the conversation is generated',
    );
  });

  test('a conversation still generating, opened from the list, is followed on /events to its chat', async () => {
    const { page } = session;
    await signIn(page);
    await createScenario(page);
    // Slow stages leave time to leave the creation half-way; the list shows it once it exists.
    await setFaults('slow', 1, { routes: ['generate'], slow_ms: 1500 });

    const streams = [];
    page.on('request', (request) => {
      const url = new URL(request.url());
      if (request.resourceType() === 'eventsource') streams.push(url.pathname);
    });
    await page.getByTestId('create-conversation').click();
    await page.waitForFunction(() => {
      const value = Number(document.querySelector('[data-testid="progress-bar"]')?.getAttribute('aria-valuenow'));
      return value > 0 && value < 100;
    });
    // This user's only conversation, listed (pending or generating) as soon as it exists.
    const item = page.getByTestId('conversation-item').first();
    await item.waitFor();
    assert.match((await item.getAttribute('data-status')) ?? '', /^(pending|generating)$/);
    const conversationId = await item.getAttribute('data-conversation-id');
    await item.click();

    // The follow screen restates where the generation stands, then goes on to 100 and the chat.
    await page.locator('[data-testid="progress-bar"][data-status="generating"]').waitFor();
    await recordInPage(page, 'follow', { selector: '[data-testid="progress-bar"]', attributes: ['aria-valuenow'] });
    const chat = page.getByTestId('chat');
    await chat.waitFor({ timeout: 60000 });
    assert.equal(await chat.getAttribute('data-conversation-id'), conversationId);

    const values = (await readRecording(page, 'follow')).map((entry) => Number(entry['aria-valuenow']));
    assert.ok(values[0] > 0, `the follow screen starts from the stored progress, not 0 (saw ${values.join(', ')})`);
    assert.equal(values.at(-1), 100, `the bar ends at 100 (saw ${values.join(', ')})`);
    for (let i = 1; i < values.length; i += 1) {
      assert.ok(values[i] >= values[i - 1], `the bar never moves backwards (saw ${values.join(', ')})`);
    }
    assert.deepEqual(
      streams,
      ['/api/conversations/create-stream', `/api/conversations/${conversationId}/events`],
      'one stream to create, one to follow; no second conversation created',
    );
  });

  test('when the generation fails the page says so in words, without the internal detail', async () => {
    const { page } = session;
    await signIn(page);
    await createScenario(page);
    await setFaults('error', 1, { routes: ['generate'] });

    await page.getByTestId('create-conversation').click();
    await page.locator('[data-testid="progress-bar"][data-status="failed"]').waitFor({ timeout: 60000 });
    const panel = page.locator('.progress-panel');
    assert.match(await panel.getByTestId('error').textContent(), AI_UNAVAILABLE);
    assert.ok(!(await page.content()).includes(LEAK_CANARY), 'the internal failure detail never reaches the page');

    // The failed conversation is listed as such, and trying again creates one that completes.
    await page.locator('[data-testid="conversation-item"][data-status="failed"]').waitFor();
    await setFaults('none', 0);
    await page.getByTestId('retry-conversation').click();
    await page.getByTestId('chat').waitFor({ timeout: 60000 });
  });

  test('an answer streams into the bubble token by token and ends as the stored message', async () => {
    const { page } = session;
    await signIn(page);
    await createScenario(page);
    const conversationId = await openNewConversation(page);

    await holdStreams(1);
    await recordInPage(page, 'answer', {
      selector: '[data-testid="assistant-bubble"]',
      attributes: ['data-status'],
      textSelector: '[data-testid="bubble-text"]',
    });
    await sendMessage(page, 'What happens when the train is late?');

    // Held after one token: the bubble shows it, still streaming, with the typing cursor.
    await waitForStats((stats) => stats.streams_held >= 1);
    const answer = lastAnswer(page);
    await page.waitForFunction(() => {
      const bubbles = document.querySelectorAll('[data-testid="assistant-bubble"]');
      return (bubbles[bubbles.length - 1]?.querySelector('[data-testid="bubble-text"]')?.textContent ?? '') !== '';
    });
    const firstToken = await answer.text.textContent();
    assert.equal(await answer.bubble.getAttribute('data-status'), 'streaming');
    assert.ok(await answer.bubble.getByTestId('typing-cursor').isVisible(), 'typing cursor while streaming');

    await releaseStreams();
    await waitForLastAnswer(page, 'completed');

    const streamed = (await readRecording(page, 'answer'))
      .filter((entry) => entry['data-status'] === 'streaming' && entry.text)
      .map((entry) => entry.text);
    assert.equal(streamed[0], firstToken, 'the first observation is the held first token');
    assert.ok(streamed.length >= 3, `the bubble grew over several observations (saw ${streamed.length})`);
    for (let i = 1; i < streamed.length; i += 1) {
      assert.ok(
        streamed[i].startsWith(streamed[i - 1]) && streamed[i].length > streamed[i - 1].length,
        `each observation extends the previous one: ${JSON.stringify(streamed[i - 1])} → ${JSON.stringify(streamed[i])}`,
      );
    }

    const finalText = await answer.text.textContent();
    const stored = (await storedMessages(page, conversationId)).filter((m) => m.role === 'assistant').at(-1);
    assert.equal(stored?.status, 'completed');
    assert.equal(finalText, stored?.content, 'the bubble ends as the stored message');
    assert.equal(await answer.bubble.getByTestId('typing-cursor').count(), 0, 'no cursor once complete');
  });

  test('leaving the chat mid-answer cancels the AI stream and keeps the partial answer as interrupted', async () => {
    const { page } = session;
    await signIn(page);
    await createScenario(page);
    const conversationId = await openNewConversation(page);

    await holdStreams(2);
    await sendMessage(page, 'Tell me about the lanterns.');
    await waitForStats((stats) => stats.streams_held >= 1);
    await page.waitForFunction(() => {
      const bubbles = document.querySelectorAll('[data-testid="assistant-bubble"]');
      return (bubbles[bubbles.length - 1]?.querySelector('[data-testid="bubble-text"]')?.textContent ?? '').includes(' ');
    });
    const partial = await lastAnswer(page).text.textContent();

    await page.getByTestId('back').click();
    await waitForStats((stats) => stats.streams_cancelled >= 1);
    // The gateway stores the partial text once it sees the browser go; poll its API (bounded).
    let stored;
    const deadline = Date.now() + 10000;
    do {
      stored = (await storedMessages(page, conversationId)).filter((m) => m.role === 'assistant').at(-1);
      if (stored?.status === 'interrupted') break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    } while (Date.now() < deadline);
    assert.equal(stored?.status, 'interrupted');
    assert.equal(stored?.content, partial, 'the stored partial answer is what the page had shown');

    // Reopened, the chat shows the partial answer marked as interrupted.
    await page.locator(`[data-testid="conversation-item"][data-conversation-id="${conversationId}"]`).click();
    await waitForLastAnswer(page, 'interrupted');
    assert.equal(await lastAnswer(page).text.textContent(), partial);
    assert.match(await lastAnswer(page).bubble.textContent(), /interrupted/);
  });

  test('when the AI service fails the page says so and stays usable; a retry works once it recovers', async () => {
    const { page } = session;
    await signIn(page);
    await createScenario(page);
    await openNewConversation(page);

    await setFaults('error', 1);
    await sendMessage(page, 'Does this reach the AI?');
    const failed = lastAnswer(page).bubble;
    await failed.getByTestId('error').waitFor();
    assert.match(await failed.getByTestId('error').textContent(), AI_UNAVAILABLE);
    assert.equal(await failed.getAttribute('data-status'), 'error');

    // Still usable: the input takes text and the retry button is there.
    await page.getByTestId('message-input').fill('typing still works');
    assert.equal(await page.getByTestId('message-input').inputValue(), 'typing still works');
    await page.getByTestId('message-input').fill('');

    await setFaults('none', 0);
    await page.getByTestId('retry').click();
    const answer = lastAnswer(page);
    await waitForLastAnswer(page, 'completed');
    assert.notEqual((await answer.text.textContent()) ?? '', '', 'the retried answer has text');
    assert.equal(await page.getByTestId('chat').getByTestId('error').count(), 0, 'the error is gone after the retry');
  });

  test('when the passage search fails, scenario creation still works and says the passages came from a fallback', async () => {
    const { page } = session;
    await signIn(page);
    // A description no earlier run used, so the first search cannot be answered from a cache.
    const scenario = { novelId: 'emma', description: `Emma plans a picnic (${randomUUID()})` };
    await createScenario(page, scenario);
    assert.equal((await page.getByTestId('passages-source').textContent())?.trim(), 'ai');
    assert.equal(await page.getByTestId('fallback-note').count(), 0);

    await setFaults('error', 1);
    await createScenario(page, scenario);
    await page.getByTestId('fallback-note').waitFor();
    assert.match((await page.getByTestId('passages-source').textContent())?.trim() ?? '', /^(cache|fallback)$/);
    assert.match(await page.getByTestId('fallback-note').textContent(), /fallback/);
  });

  test('screenshot of a chat', async () => {
    const { page } = session;
    await signIn(page, uniqueUser('alice'));
    await createScenario(page);
    await openNewConversation(page);
    await sendMessage(page, 'Describe the station in one paragraph.');
    await waitForLastAnswer(page, 'completed');

    await mkdir(ARTIFACTS, { recursive: true });
    const path = `${ARTIFACTS}chat.png`;
    await page.screenshot({ path, fullPage: true });
    assert.ok((await stat(path)).size > 1000, 'the screenshot was written');
  });
});
