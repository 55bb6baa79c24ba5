// Launches Debian's Chromium through playwright-core with a fresh profile per test, and the
// user flows the tests share (sign in, create a scenario, open a conversation).
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM_PATH, SLUICE_URL } from './env.mjs';

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A page on the gateway in a new browser; `close()` also deletes the profile. */
export async function openPage() {
  const profile = await mkdtemp(join(tmpdir(), 'sluice-e2e-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
    baseURL: SLUICE_URL,
    viewport: { width: 1200, height: 860 },
  });
  context.setDefaultTimeout(20000);
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    page,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** A user name no other test run uses, so runs never see each other's conversations. */
export function uniqueUser(prefix = 'e2e') {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/** Signs in with dev login and waits until the page says who is signed in. */
export async function signIn(page, username = uniqueUser()) {
  await page.goto('/');
  await page.getByTestId('username').fill(username);
  await page.getByTestId('login').click();
  await page.getByTestId('signed-in-as').getByText(username).waitFor();
  return username;
}

/** Creates a scenario and waits until the page shows it; returns the created scenario. */
export async function createScenario(page, { novelId = 'pride-and-prejudice', description = 'Elizabeth meets Darcy at a rainy station' } = {}) {
  await page.getByTestId('novel-id').fill(novelId);
  await page.getByTestId('description').fill(description);
  const [response] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === '/api/scenarios' && r.request().method() === 'POST'),
    page.getByTestId('create-scenario').click(),
  ]);
  if (response.status() !== 201) throw new Error(`creating the scenario answered ${response.status()}`);
  const scenario = await response.json();
  await page.locator(`[data-testid="scenario"][data-scenario-id="${scenario.id}"]`).waitFor();
  return scenario;
}

/** From a created scenario, creates a conversation and waits for its chat; returns its id. */
export async function openNewConversation(page) {
  await page.getByTestId('create-conversation').click();
  const chat = page.getByTestId('chat');
  await chat.waitFor({ timeout: 60000 });
  const id = await chat.getAttribute('data-conversation-id');
  if (!id) throw new Error('the chat does not say which conversation it shows');
  return id;
}

/** The newest assistant bubble and its text element. */
export function lastAnswer(page) {
  const bubble = page.getByTestId('assistant-bubble').last();
  return { bubble, text: bubble.getByTestId('bubble-text') };
}

/** Waits until the newest assistant bubble reaches `status` (streaming, completed, error, …). */
export function waitForLastAnswer(page, status, timeout = 60000) {
  return page.waitForFunction(
    (status) => {
      const bubbles = document.querySelectorAll('[data-testid="assistant-bubble"]');
      return bubbles[bubbles.length - 1]?.getAttribute('data-status') === status;
    },
    status,
    { timeout },
  );
}

/** Sends a message from the chat input. */
export async function sendMessage(page, content) {
  await page.getByTestId('message-input').fill(content);
  await page.getByTestId('send').click();
}

/**
 * Starts recording, inside the page, each state the last element matching `selector` goes
 * through: the listed attributes and the text of `textSelector` inside it. A MutationObserver
 * sees every render, which polling from the test could miss. Read it with `readRecording`.
 */
export async function recordInPage(page, name, { selector, attributes = [], textSelector = null }) {
  await page.evaluate(
    ({ name, selector, attributes, textSelector }) => {
      const seen = [];
      window.__recordings = { ...(window.__recordings ?? {}), [name]: seen };
      const note = () => {
        const all = document.querySelectorAll(selector);
        const element = all[all.length - 1];
        if (!element) return;
        const value = Object.fromEntries(attributes.map((attribute) => [attribute, element.getAttribute(attribute)]));
        if (textSelector) value.text = element.querySelector(textSelector)?.textContent ?? null;
        if (JSON.stringify(seen[seen.length - 1]) !== JSON.stringify(value)) seen.push(value);
      };
      new MutationObserver(note).observe(document.body, {
        subtree: true,
        childList: true,
        attributes: true,
        characterData: true,
      });
      note();
    },
    { name, selector, attributes, textSelector },
  );
}

/** What `recordInPage` saw so far, oldest first. */
export function readRecording(page, name) {
  return page.evaluate((name) => window.__recordings?.[name] ?? [], name);
}
