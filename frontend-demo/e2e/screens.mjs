// Screenshots of every screen of the demo page, for a person to look at (not a test: nothing is
// asserted beyond reaching each screen). Needs the same running gateway and mock as the tests:
//   bash e2e/run.sh --screens        (starts them), or
//   SLUICE_URL=… MOCK_URL=… node e2e/screens.mjs
// Writes e2e/artifacts/screens/VIEW-NN-name.png: desktop, phone, and desktop in dark mode.
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import {
  createScenario,
  openNewConversation,
  openPage,
  sendMessage,
  signIn,
  uniqueUser,
  waitForLastAnswer,
} from './support/browser.mjs';
import { SKIP } from './support/env.mjs';
import { holdStreams, releaseStreams, resetMock, setFaults, waitForStats } from './support/mock.mjs';

const OUT = fileURLToPath(new URL('./artifacts/screens/', import.meta.url));
const VIEWPORTS = [
  { name: 'desktop', width: 1200, height: 860 },
  { name: 'phone', width: 390, height: 844 },
  { name: 'dark', width: 1200, height: 860, colorScheme: 'dark' },
];

async function shoot(page, viewport, name) {
  const path = `${OUT}${viewport.name}-${name}.png`;
  await page.screenshot({ path, fullPage: true });
  console.log(path);
}

async function screens(viewport) {
  await resetMock();
  const { page, close } = await openPage();
  try {
    await page.setViewportSize({ width: viewport.width, height: viewport.height });
    await page.emulateMedia({ colorScheme: viewport.colorScheme ?? 'light' });
    await page.goto('/');
    await page.getByTestId('username').waitFor();
    await shoot(page, viewport, '01-sign-in');

    await signIn(page, uniqueUser('reader'));
    await shoot(page, viewport, '02-home');

    await createScenario(page);
    await shoot(page, viewport, '03-scenario');

    await page.getByTestId('create-conversation').click();
    await page.waitForFunction(() => {
      const value = Number(document.querySelector('[data-testid="progress-bar"]')?.getAttribute('aria-valuenow'));
      return value > 0 && value < 100;
    });
    await shoot(page, viewport, '04-progress');
    await page.getByTestId('chat').waitFor({ timeout: 60000 });
    await shoot(page, viewport, '05-chat-history');

    await holdStreams(3);
    await sendMessage(page, 'What happens when the train is late?');
    await waitForStats((stats) => stats.streams_held >= 1);
    await page.getByTestId('typing-cursor').waitFor();
    await shoot(page, viewport, '06-chat-streaming');
    await releaseStreams();
    await waitForLastAnswer(page, 'completed');
    await shoot(page, viewport, '07-chat-answered');

    await setFaults('error', 1);
    await sendMessage(page, 'Does this reach the AI?');
    await waitForLastAnswer(page, 'error');
    await shoot(page, viewport, '08-chat-ai-down');

    await page.getByTestId('back').click();
    await createScenario(page, { novelId: 'emma', description: 'Emma plans a picnic that goes wrong' });
    await page.getByTestId('fallback-note').waitFor();
    await shoot(page, viewport, '09-scenario-fallback');

    await page.getByTestId('create-conversation').click();
    await page.locator('[data-testid="progress-bar"][data-status="failed"]').waitFor({ timeout: 60000 });
    await shoot(page, viewport, '10-generation-failed');

    await setFaults('slow', 1, { routes: ['generate'], slow_ms: 1500 });
    await page.getByTestId('retry-conversation').click();
    await page.locator('[data-testid="conversation-item"][data-status="pending"]').first().click();
    await page.locator('[data-testid="progress-bar"][data-status="generating"]').waitFor();
    await shoot(page, viewport, '11-follow');
    await page.getByTestId('chat').waitFor({ timeout: 60000 });
    await setFaults('none', 0);

    await holdStreams(4);
    await sendMessage(page, 'Tell me about the lanterns.');
    await waitForStats((stats) => stats.streams_held >= 1);
    const conversationId = await page.getByTestId('chat').getAttribute('data-conversation-id');
    await page.getByTestId('back').click();
    await releaseStreams();
    await page.locator(`[data-testid="conversation-item"][data-conversation-id="${conversationId}"]`).click();
    await waitForLastAnswer(page, 'interrupted');
    await shoot(page, viewport, '12-chat-interrupted');
  } finally {
    await close();
    await releaseStreams().catch(() => {});
    await resetMock();
  }
}

if (SKIP) {
  console.error(SKIP);
  process.exit(1);
}
await mkdir(OUT, { recursive: true });
for (const viewport of VIEWPORTS) await screens(viewport);
