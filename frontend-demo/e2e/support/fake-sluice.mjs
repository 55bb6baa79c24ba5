// A small stand-in for the sluice gateway and its simulated AI service, written from
// CONTRACT.md sections 3 and 4, so the page and the browser tests can be exercised without the
// Rust build. It is not the product: acceptance runs point SLUICE_URL / MOCK_URL at a real
// gateway. Usage:
//   node e2e/support/fake-sluice.mjs            # gateway on :8080, mock controls on :8090
//   SLUICE_URL=http://127.0.0.1:8080 MOCK_URL=http://127.0.0.1:8090 npm run test:e2e
import { randomUUID } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const DIST = resolve(fileURLToPath(new URL('../../dist', import.meta.url)));
const COOKIE = 'sluice_token';
const TOKENS = 'Elizabeth stepped onto the wet platform , and the last train hissed away into the dark .'.split(' ');
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.png': 'image/png', '.svg': 'image/svg+xml' };

/** Starts the fake on the given ports (0: any free port) and returns its URLs and a stop function. */
export async function startFakeSluice({ port = 0, mockPort = 0, stageDelayMs = 120, tokenDelayMs = 60 } = {}) {
  const state = freshState();
  const gateway = createServer((req, res) => handleGateway(state, { stageDelayMs, tokenDelayMs }, req, res));
  const mock = createServer((req, res) => handleMock(state, req, res));
  await Promise.all([listen(gateway, port), listen(mock, mockPort)]);
  return {
    url: `http://127.0.0.1:${gateway.address().port}`,
    mockUrl: `http://127.0.0.1:${mock.address().port}`,
    async stop() {
      state.releaseHeld();
      gateway.closeAllConnections();
      mock.closeAllConnections();
      await Promise.all([new Promise((r) => gateway.close(r)), new Promise((r) => mock.close(r))]);
    },
  };
}

function listen(server, port) {
  return new Promise((resolveListen) => server.listen(port, '127.0.0.1', resolveListen));
}

function freshState() {
  const state = {
    scenarios: new Map(),
    conversations: new Map(),
    searchCache: new Map(),
    faults: { mode: 'none', rate: 0 },
    holdAfter: null,
    held: new Set(),
    stats: { calls: {}, streams_open: 0, streams_cancelled: 0 },
    releaseHeld() {
      for (const release of state.held) release();
      state.held.clear();
    },
  };
  return state;
}

function resetState(state) {
  state.releaseHeld();
  state.faults = { mode: 'none', rate: 0 };
  state.holdAfter = null;
  state.stats = { calls: {}, streams_open: 0, streams_cancelled: 0 };
}

function failing(state) {
  return state.faults.mode === 'error' && Math.random() < state.faults.rate;
}

function count(state, route) {
  state.stats.calls[route] = (state.stats.calls[route] ?? 0) + 1;
}

// ---------- HTTP helpers ----------

function json(res, status, body, headers = {}) {
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

const TITLES = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 409: 'Conflict', 429: 'Too Many Requests' };

function problem(res, status, code, detail, extra = {}) {
  const requestId = res.getHeader('X-Request-Id');
  const headers = { 'Content-Type': 'application/problem+json' };
  if (status === 401) headers['WWW-Authenticate'] = 'Bearer';
  res.writeHead(status, headers);
  res.end(JSON.stringify({ type: 'about:blank', title: TITLES[status] ?? 'Error', status, detail, code, request_id: requestId, ...extra }));
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
  } catch {
    return undefined;
  }
}

function userOf(req) {
  const cookies = Object.fromEntries(
    (req.headers.cookie ?? '').split(';').map((part) => part.trim().split('=')).filter((pair) => pair.length === 2),
  );
  return cookies[COOKIE] ? decodeURIComponent(cookies[COOKIE]) : null;
}

function sameOrigin(req) {
  const origin = req.headers.origin ?? req.headers.referer;
  return typeof origin === 'string' && new URL(origin).host === req.headers.host;
}

function openSse(state, req, res, onClose) {
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
  res.flushHeaders();
  state.stats.streams_open += 1;
  let closed = false;
  res.on('close', () => {
    closed = true;
    state.stats.streams_open -= 1;
    onClose?.();
  });
  return {
    send(event, data, id) {
      if (closed) return;
      res.write(`${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    },
    end() {
      if (!closed) res.end();
    },
    get closed() {
      return closed;
    },
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------- gateway ----------

async function handleGateway(state, timing, req, res) {
  res.setHeader('X-Request-Id', req.headers['x-request-id'] ?? randomUUID());
  const url = new URL(req.url, 'http://fake');
  const path = url.pathname;
  const method = req.method;

  if (path === '/health') return json(res, 200, { status: 'ok', version: 'fake' });
  if (!path.startsWith('/api/')) return serveStatic(res, path);

  if (method === 'POST' && path === '/api/auth/dev-login') {
    const body = await readJson(req);
    if (typeof body?.username !== 'string' || body.username.trim() === '') {
      return problem(res, 400, 'validation_failed', 'username: must not be empty', { errors: [{ field: 'username', message: 'must not be empty' }] });
    }
    const cookie = `${COOKIE}=${encodeURIComponent(body.username.trim())}; HttpOnly; SameSite=Strict; Path=/`;
    return json(res, 200, { access_token: 'fake', token_type: 'Bearer', expires_in: 3600 }, { 'Set-Cookie': cookie });
  }

  const user = userOf(req);
  if (!user) return problem(res, 401, 'unauthorized', 'missing or invalid token');
  if (method !== 'GET' && !sameOrigin(req)) return problem(res, 403, 'csrf_rejected', 'cross-site request refused');

  if (method === 'GET' && path === '/api/me') return json(res, 200, { sub: user });
  if (method === 'POST' && path === '/api/scenarios') return createScenario(state, user, req, res);
  if (method === 'GET' && path === '/api/conversations') {
    const own = [...state.conversations.values()].filter((c) => c.owner === user).reverse();
    return json(res, 200, own.map(conversationView));
  }
  if (method === 'GET' && path === '/api/conversations/create-stream') {
    return createStream(state, timing, user, url.searchParams.get('scenario_id'), req, res);
  }
  const match = /^\/api\/conversations\/([^/]+)(\/[a-z-]+)?$/.exec(path);
  const conversation = match ? state.conversations.get(decodeURIComponent(match[1])) : undefined;
  if (match && (!conversation || conversation.owner !== user)) return problem(res, 404, 'not_found', 'no such conversation');
  if (conversation && method === 'GET') {
    switch (match[2]) {
      case undefined:
        return json(res, 200, conversationView(conversation));
      case '/status':
        return json(res, 200, { status: conversation.status, progress: conversation.progress, message: conversation.message });
      case '/messages':
        return json(res, 200, conversation.messages);
      case '/events':
        return followEvents(state, conversation, req, res);
      case '/messages-stream':
        return streamAnswer(state, timing, conversation, url.searchParams.get('content'), req, res);
    }
  }
  return problem(res, 404, 'not_found', 'no such route');
}

function serveStatic(res, path) {
  const file = normalize(join(DIST, path === '/' ? 'index.html' : path));
  const target = file.startsWith(DIST) && existsSync(file) && statSync(file).isFile() ? file : join(DIST, 'index.html');
  if (!existsSync(target)) return problem(res, 404, 'not_found', 'run `npm run build` first');
  res.writeHead(200, { 'Content-Type': TYPES[extname(target)] ?? 'application/octet-stream' });
  createReadStream(target).pipe(res);
}

async function createScenario(state, user, req, res) {
  const body = await readJson(req);
  if (body === undefined) return problem(res, 400, 'validation_failed', 'body: malformed JSON');
  const novelId = body?.novel_id;
  const description = body?.description;
  if (typeof novelId !== 'string' || novelId === '') {
    return problem(res, 400, 'validation_failed', 'novel_id: required', { errors: [{ field: 'novel_id', message: 'required' }] });
  }
  if (typeof description !== 'string' || description.length < 1 || description.length > 4000) {
    return problem(res, 400, 'validation_failed', 'description: must be 1..=4000 characters', {
      errors: [{ field: 'description', message: 'must be 1..=4000 characters' }],
    });
  }
  count(state, 'search');
  const query = `${novelId}\n${description}`;
  let passageIds;
  let source;
  if (failing(state)) {
    if (state.searchCache.has(query)) [passageIds, source] = [state.searchCache.get(query), 'cache'];
    else [passageIds, source] = [state.searchCache.get(novelId) ?? [], 'fallback'];
  } else {
    passageIds = [1, 2, 3].map((n) => `${novelId}-p${n}`);
    source = 'ai';
    state.searchCache.set(query, passageIds);
    state.searchCache.set(novelId, passageIds);
  }
  const scenario = {
    id: randomUUID(),
    owner: user,
    novel_id: novelId,
    description,
    passage_ids: passageIds,
    passages_source: source,
    created_at: new Date().toISOString(),
  };
  state.scenarios.set(scenario.id, scenario);
  const { owner: _owner, ...view } = scenario;
  return json(res, 201, view);
}

function conversationView(c) {
  return {
    id: c.id,
    scenario_id: c.scenario_id,
    status: c.status,
    progress: c.progress,
    status_message: c.message,
    error: c.error,
    created_at: c.created_at,
    completed_at: c.completed_at,
  };
}

/** Records an event on the conversation and hands it to every open stream. */
function emit(conversation, event, data) {
  conversation.seq += 1;
  for (const listener of conversation.listeners) listener(event, data, conversation.seq);
}

function createStream(state, timing, user, scenarioId, req, res) {
  const scenario = scenarioId ? state.scenarios.get(scenarioId) : undefined;
  if (!scenario || scenario.owner !== user) return problem(res, 404, 'not_found', 'no such scenario');
  const conversation = {
    id: randomUUID(),
    owner: user,
    scenario_id: scenario.id,
    status: 'pending',
    progress: 0,
    message: 'Queued',
    error: null,
    created_at: new Date().toISOString(),
    completed_at: null,
    messages: [],
    listeners: new Set(),
    seq: 0,
  };
  state.conversations.set(conversation.id, conversation);
  subscribe(state, conversation, req, res);
  emit(conversation, 'progress', { conversation_id: conversation.id, progress: 0, message: 'Queued' });
  void generate(state, timing, conversation);
}

function followEvents(state, conversation, req, res) {
  subscribe(state, conversation, req, res);
  if (conversation.status === 'completed') {
    emit(conversation, 'complete', { conversation_id: conversation.id, status: 'completed', message_count: conversation.messages.length });
  } else if (conversation.status === 'failed') {
    emit(conversation, 'error', { conversation_id: conversation.id, code: 'ai_unavailable', message: conversation.error });
  } else {
    emit(conversation, 'progress', { conversation_id: conversation.id, progress: conversation.progress, message: conversation.message });
  }
}

function subscribe(state, conversation, req, res) {
  const stream = openSse(state, req, res, () => conversation.listeners.delete(listener));
  const listener = (event, data, id) => {
    stream.send(event, data, id);
    if (event !== 'progress') stream.end();
  };
  conversation.listeners.add(listener);
}

async function generate(state, timing, conversation) {
  count(state, 'generate');
  const stages = [
    [20, 'Reading the passages'],
    [45, 'Outlining the scene'],
    [70, 'Writing the opening'],
    [90, 'Polishing'],
  ];
  conversation.status = 'generating';
  for (const [progress, message] of stages) {
    await sleep(timing.stageDelayMs);
    if (failing(state)) {
      conversation.status = 'failed';
      conversation.error = 'generation failed';
      emit(conversation, 'error', { conversation_id: conversation.id, code: 'ai_unavailable', message: 'the AI service failed' });
      return;
    }
    Object.assign(conversation, { progress, message });
    emit(conversation, 'progress', { conversation_id: conversation.id, progress, message });
  }
  await sleep(timing.stageDelayMs);
  const now = new Date().toISOString();
  conversation.messages.push({
    id: randomUUID(),
    role: 'assistant',
    content: 'The scene is set. What would you like to happen?',
    status: 'completed',
    created_at: now,
  });
  Object.assign(conversation, { status: 'completed', progress: 100, message: 'Done', completed_at: now });
  emit(conversation, 'complete', { conversation_id: conversation.id, status: 'completed', message_count: conversation.messages.length });
}

async function streamAnswer(state, timing, conversation, content, req, res) {
  if (conversation.status !== 'completed') return problem(res, 409, 'conversation_not_ready', 'conversation is still generating');
  if (typeof content !== 'string' || content.trim() === '' || [...content].length > 8000) {
    return problem(res, 400, 'validation_failed', 'content: must be 1..=8000 characters', {
      errors: [{ field: 'content', message: 'must be 1..=8000 characters' }],
    });
  }
  const now = () => new Date().toISOString();
  conversation.messages.push({ id: randomUUID(), role: 'user', content, status: 'completed', created_at: now() });
  const answer = { id: randomUUID(), role: 'assistant', content: '', status: 'failed', created_at: now() };
  conversation.messages.push(answer);
  let finished = false;
  const stream = openSse(state, req, res, () => {
    if (!finished) {
      answer.status = 'interrupted';
      state.stats.streams_cancelled += 1;
    }
  });
  count(state, 'chat');
  if (failing(state)) {
    finished = true;
    stream.send('error', { code: 'upstream_error', message: 'the AI service answered 500' });
    return stream.end();
  }
  for (const [index, token] of TOKENS.entries()) {
    if (stream.closed) return;
    if (state.holdAfter !== null && index === state.holdAfter) {
      await new Promise((release) => state.held.add(release));
    }
    const piece = index === 0 ? token : ` ${token}`;
    answer.content += piece;
    stream.send('token', { content: piece });
    await sleep(timing.tokenDelayMs);
  }
  finished = true;
  answer.status = 'completed';
  stream.send('complete', { message_id: answer.id, content: answer.content });
  stream.end();
}

// ---------- mock controls ----------

async function handleMock(state, req, res) {
  const path = new URL(req.url, 'http://fake').pathname;
  const body = req.method === 'POST' ? await readJson(req) : null;
  if (req.method === 'POST' && path === '/__mock/faults') {
    state.faults = { mode: body?.mode ?? 'none', rate: Number(body?.rate ?? 0) };
    return json(res, 200, state.faults);
  }
  if (req.method === 'POST' && path === '/__mock/hold') {
    state.holdAfter = Number(body?.after_tokens ?? 0);
    return json(res, 200, { after_tokens: state.holdAfter });
  }
  if (req.method === 'POST' && path === '/__mock/release') {
    state.holdAfter = null;
    state.releaseHeld();
    return json(res, 200, { released: true });
  }
  if (req.method === 'POST' && path === '/__mock/reset') {
    resetState(state);
    return json(res, 200, { reset: true });
  }
  if (req.method === 'GET' && path === '/__mock/stats') {
    return json(res, 200, { ...state.stats, streams_held: state.held.size });
  }
  return json(res, 404, { error: 'unknown mock route' });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const fake = await startFakeSluice({
    port: Number(process.env.FAKE_PORT ?? 8080),
    mockPort: Number(process.env.FAKE_MOCK_PORT ?? 8090),
  });
  console.log(`SLUICE_URL=${fake.url} MOCK_URL=${fake.mockUrl}`);
}
