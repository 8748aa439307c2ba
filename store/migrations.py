"""Versioned schema: migration N brings `PRAGMA user_version` from N-1 to N.

Append only; never edit a migration that has shipped. SQL is kept portable where it costs
nothing (no AUTOINCREMENT, ISO text timestamps, CHECK constraints)."""

from __future__ import annotations

V1_CONVERSATIONS_MESSAGES_LEADS = """
CREATE TABLE leads (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL CHECK (channel IN ('web', 'whatsapp', 'instagram')),
    name TEXT,
    phone TEXT,
    email TEXT,
    service TEXT,
    area TEXT,
    urgency TEXT,
    classification TEXT NOT NULL DEFAULT 'frio'
        CHECK (classification IN ('frio', 'tibio', 'caliente')),
    status TEXT NOT NULL DEFAULT 'new',
    contacted INTEGER NOT NULL DEFAULT 0,
    notes TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_interaction_at TEXT NOT NULL
);
CREATE INDEX leads_by_classification ON leads (classification);
CREATE INDEX leads_by_channel ON leads (channel);

CREATE TABLE conversations (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL CHECK (channel IN ('web', 'whatsapp', 'instagram')),
    external_key TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed')),
    lead_id INTEGER REFERENCES leads (id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
-- One active conversation per person and channel; a reset closes it and a new one begins.
CREATE UNIQUE INDEX conversations_active_key
    ON conversations (channel, external_key) WHERE status = 'active';

CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT NOT NULL,
    external_id TEXT,
    status TEXT CHECK (status IN ('pending', 'handled', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    reply_to INTEGER REFERENCES messages (id) ON DELETE CASCADE,
    source TEXT,
    model TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    created_at TEXT NOT NULL
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
CREATE INDEX messages_pending ON messages (status) WHERE status = 'pending';
-- Idempotent at the edges: a provider's message id is stored once per channel, and an
-- inbound message gets at most one reply row.
CREATE UNIQUE INDEX messages_external_once ON messages (channel, external_id)
    WHERE external_id IS NOT NULL;
CREATE UNIQUE INDEX messages_reply_once ON messages (reply_to) WHERE reply_to IS NOT NULL;
"""

V2_MESSAGING_CHANNELS = """
-- The provider's own time (ms since the epoch) orders a conversation's messages; `kind` says
-- what a WhatsApp/Instagram message was (text, image, location...).
ALTER TABLE messages ADD COLUMN provider_ts INTEGER;
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'text';
DROP INDEX messages_pending;
CREATE INDEX messages_pending ON messages (conversation_id, provider_ts, id)
    WHERE status = 'pending';

-- Everything we send to a provider is a row before the first attempt.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    channel TEXT NOT NULL CHECK (channel IN ('whatsapp', 'instagram')),
    recipient TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('text', 'read')),
    body TEXT NOT NULL,
    reply_id INTEGER REFERENCES messages (id) ON DELETE CASCADE,
    part INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sent', 'failed', 'skipped')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    provider_message_id TEXT,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX outbox_reply_part ON outbox (reply_id, part) WHERE reply_id IS NOT NULL;
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'pending';
CREATE UNIQUE INDEX outbox_provider_id ON outbox (channel, provider_message_id)
    WHERE provider_message_id IS NOT NULL;

-- Delivery receipts (sent, delivered, read, failed) for what we sent.
CREATE TABLE delivery_statuses (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    provider_message_id TEXT NOT NULL,
    status TEXT NOT NULL,
    error_code INTEGER,
    error_title TEXT,
    provider_ts INTEGER,
    created_at TEXT NOT NULL,
    UNIQUE (channel, provider_message_id, status)
);
"""

MIGRATIONS: tuple[str, ...] = (V1_CONVERSATIONS_MESSAGES_LEADS, V2_MESSAGING_CHANNELS)
