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

MIGRATIONS: tuple[str, ...] = (V1_CONVERSATIONS_MESSAGES_LEADS,)
