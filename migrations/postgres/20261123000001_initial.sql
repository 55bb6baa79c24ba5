-- Scenarios, conversations and messages, each row owned by a user id (the JWT `sub`).
-- Times are milliseconds since the epoch; ids are UUIDv7 text.
CREATE TABLE scenarios (
    id              TEXT PRIMARY KEY,
    owner           TEXT NOT NULL,
    novel_id        TEXT NOT NULL,
    description     TEXT NOT NULL,
    passage_ids     TEXT NOT NULL,           -- JSON array of strings
    passages_source TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX scenarios_owner_created ON scenarios (owner, created_at DESC, id DESC);

CREATE TABLE conversations (
    id             TEXT PRIMARY KEY,
    owner          TEXT NOT NULL,
    scenario_id    TEXT NOT NULL REFERENCES scenarios (id),
    status         TEXT NOT NULL,            -- pending | generating | completed | failed
    progress       BIGINT NOT NULL DEFAULT 0,
    status_message TEXT,
    error          TEXT,
    event_seq      BIGINT NOT NULL DEFAULT 0, -- id of the last stored progress event
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    completed_at   BIGINT
);
CREATE INDEX conversations_owner_created ON conversations (owner, created_at DESC, id DESC);

CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    owner           TEXT NOT NULL,
    role            TEXT NOT NULL,           -- user | assistant
    content         TEXT NOT NULL,
    status          TEXT NOT NULL,           -- streaming | completed | interrupted | failed
    created_at      BIGINT NOT NULL
);
CREATE INDEX messages_conversation_created ON messages (conversation_id, created_at, id);

-- The last good passage search per novel: the fallback when the AI service is down.
CREATE TABLE novel_passages (
    novel_id    TEXT PRIMARY KEY,
    passage_ids TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
