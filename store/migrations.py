"""Versioned schema: migration N brings `PRAGMA user_version` from N-1 to N.

Append only; never edit a migration that has shipped. SQL is kept portable where it costs
nothing (ISO text timestamps, CHECK constraints; AUTOINCREMENT only where ids must never be
reused, as PostgreSQL's identity columns never reuse them)."""

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

V3_LEADS_CLASSIFIER_ALERTS_FOLLOW_UPS = """
-- What the classifier keeps about a lead: budget, a score with its reasons, the signals seen
-- so far (JSON lists), and when the person asked us to stop writing.
ALTER TABLE leads ADD COLUMN budget TEXT;
ALTER TABLE leads ADD COLUMN score INTEGER NOT NULL DEFAULT 0;
ALTER TABLE leads ADD COLUMN reasons TEXT NOT NULL DEFAULT '[]';
ALTER TABLE leads ADD COLUMN signals TEXT NOT NULL DEFAULT '[]';
ALTER TABLE leads ADD COLUMN opted_out_at TEXT;
ALTER TABLE leads ADD COLUMN last_user_message_at TEXT;
CREATE INDEX leads_follow_up ON leads (classification, last_user_message_at)
    WHERE opted_out_at IS NULL AND contacted = 0;

-- One lead per person: a channel identity (whatsapp:569..., instagram:..., web:session) or
-- a phone / e-mail the person gave links every conversation of theirs to one lead.
CREATE TABLE lead_identities (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    lead_id INTEGER NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE INDEX lead_identities_by_lead ON lead_identities (lead_id);

-- Every change of class, with the score and reasons at that moment.
CREATE TABLE lead_classifications (
    id INTEGER PRIMARY KEY,
    lead_id INTEGER NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    classification TEXT NOT NULL CHECK (classification IN ('frio', 'tibio', 'caliente')),
    score INTEGER NOT NULL,
    reasons TEXT NOT NULL,
    reply_id INTEGER REFERENCES messages (id) ON DELETE SET NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX lead_classifications_by_lead ON lead_classifications (lead_id, id);

-- A reply carries what the model said about the lead (JSON) until the classifier has read
-- it; `classified_at` marks a reply whose turn the classifier has taken into account.
ALTER TABLE messages ADD COLUMN brain_lead TEXT;
ALTER TABLE messages ADD COLUMN classified_at TEXT;
UPDATE messages SET classified_at = created_at WHERE role = 'assistant';
CREATE INDEX messages_unclassified ON messages (id)
    WHERE role = 'assistant' AND classified_at IS NULL;

-- Messages to the owner (alert, reminder, daily summary) by e-mail or webhook: a row before
-- the first attempt; `dedupe_key` makes each one happen once.
CREATE TABLE owner_notifications (
    id INTEGER PRIMARY KEY,
    lead_id INTEGER REFERENCES leads (id) ON DELETE SET NULL,
    transport TEXT NOT NULL CHECK (transport IN ('email', 'webhook')),
    event TEXT NOT NULL,
    dedupe_key TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    body_html TEXT,
    urgent INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX owner_notifications_due ON owner_notifications (next_attempt_at)
    WHERE status IN ('pending', 'sending');

-- The outbox learns WhatsApp templates (the only business-initiated message Meta delivers
-- outside the 24 h window). SQLite cannot change a CHECK: the table is rebuilt.
CREATE TABLE outbox_v3 (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    channel TEXT NOT NULL CHECK (channel IN ('whatsapp', 'instagram')),
    recipient TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('text', 'read', 'template')),
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
INSERT INTO outbox_v3 SELECT id, conversation_id, channel, recipient, kind, body, reply_id, part,
    status, attempts, next_attempt_at, provider_message_id, error, created_at, updated_at
    FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v3 RENAME TO outbox;
CREATE UNIQUE INDEX outbox_reply_part ON outbox (reply_id, part) WHERE reply_id IS NOT NULL;
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'pending';
CREATE UNIQUE INDEX outbox_provider_id ON outbox (channel, provider_message_id)
    WHERE provider_message_id IS NOT NULL;
CREATE INDEX outbox_by_conversation ON outbox (conversation_id, id) WHERE status = 'pending';

-- Follow-ups: every attempt, with what became of it. `cycle` is the person's last message
-- time: a follow-up number is used once per silence.
CREATE TABLE follow_ups (
    id INTEGER PRIMARY KEY,
    lead_id INTEGER NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    cycle TEXT NOT NULL,
    number INTEGER NOT NULL,
    channel TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'skipped', 'reminded')),
    reason TEXT,
    outbox_id INTEGER REFERENCES outbox (id) ON DELETE SET NULL,
    notification_id INTEGER REFERENCES owner_notifications (id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    UNIQUE (lead_id, cycle, number)
);
CREATE INDEX follow_ups_by_lead ON follow_ups (lead_id, id);

-- Leads that existed before: their identities, so a returning person finds their lead.
INSERT OR IGNORE INTO lead_identities (kind, value, lead_id, created_at)
    SELECT c.channel, c.external_key, c.lead_id, c.created_at FROM conversations c
    WHERE c.lead_id IS NOT NULL;
"""

V4_BACKUPS = """
-- Every backup attempt: when, the file (name only), size, how long, and ok or the error.
CREATE TABLE backups (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    path TEXT,
    size_bytes INTEGER NOT NULL DEFAULT 0,
    duration_ms INTEGER NOT NULL DEFAULT 0,
    ok INTEGER NOT NULL,
    error TEXT
);
"""

V5_ADMIN_SESSIONS = """
-- Dashboard sessions, on the server: the cookie holds a random token, the store only its
-- SHA-256; each session has its CSRF token and both an idle and an absolute expiry.
CREATE TABLE admin_sessions (
    token_hash TEXT PRIMARY KEY,
    csrf TEXT NOT NULL,
    client TEXT,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL
);
"""

V6_LEGACY_IMPORT = """
-- What came from the original Node.js system's database, so an import runs twice safely.
CREATE TABLE legacy_imports (
    kind TEXT NOT NULL,
    legacy_id TEXT NOT NULL,
    new_id INTEGER NOT NULL,
    imported_at TEXT NOT NULL,
    PRIMARY KEY (kind, legacy_id)
);

-- Follow-ups learn `imported` (the original's history, kept as it was recorded).
CREATE TABLE follow_ups_v6 (
    id INTEGER PRIMARY KEY,
    lead_id INTEGER NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    cycle TEXT NOT NULL,
    number INTEGER NOT NULL,
    channel TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'skipped', 'reminded', 'imported')),
    reason TEXT,
    outbox_id INTEGER REFERENCES outbox (id) ON DELETE SET NULL,
    notification_id INTEGER REFERENCES owner_notifications (id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    UNIQUE (lead_id, cycle, number)
);
INSERT INTO follow_ups_v6 SELECT * FROM follow_ups;
DROP TABLE follow_ups;
ALTER TABLE follow_ups_v6 RENAME TO follow_ups;
CREATE INDEX follow_ups_by_lead ON follow_ups (lead_id, id);
"""

V7_HAND_OFF = """
-- A person took this conversation over from the bot (the dashboard's hand-off).
ALTER TABLE conversations ADD COLUMN paused_at TEXT;
"""

V8_PROMPT_VERSIONS = """
-- The business's rules for the model as edited in the dashboard; the newest is in force
-- (none: prompts/systemPrompt.txt). Every edit is kept, so any can be restored.
CREATE TABLE prompt_versions (
    id INTEGER PRIMARY KEY,
    text TEXT NOT NULL,
    note TEXT,
    created_at TEXT NOT NULL
);
"""

V9_STRATEGY_VERSIONS = """
-- The commercial strategy (objective, hot-lead criteria, tone, insistence) is versioned
-- like the prompt: `kind` tells them apart.
ALTER TABLE prompt_versions ADD COLUMN kind TEXT NOT NULL DEFAULT 'prompt';
CREATE INDEX prompt_versions_by_kind ON prompt_versions (kind, id);
"""

V10_IDENTITY_CLAIMS_PROVENANCE_SANDBOX = """
-- A typed phone or e-mail is a claim, not an identity: it never links a conversation to
-- another person's lead. Claims are kept per lead (any number of leads may claim a value);
-- the owner sees leads that share one and merges them by hand.
CREATE TABLE lead_claims (
    lead_id INTEGER NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('phone', 'email')),
    value TEXT NOT NULL,
    message_id INTEGER REFERENCES messages (id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (lead_id, kind, value)
);
CREATE INDEX lead_claims_by_value ON lead_claims (kind, value);
INSERT OR IGNORE INTO lead_claims (lead_id, kind, value, created_at)
    SELECT lead_id, kind, value, created_at FROM lead_identities
    WHERE kind IN ('phone', 'email');
DELETE FROM lead_identities WHERE kind IN ('phone', 'email');

-- Where each field of a lead came from: {field: {"message": id, "conversation": id,
-- "how": "typed" | "asked" | "correction" | "model" | "channel"}}.
ALTER TABLE leads ADD COLUMN sources TEXT NOT NULL DEFAULT '{}';
-- A lead of one conversation: everything it knows came from that conversation.
UPDATE leads SET sources = (
    SELECT json_object(
        'name', json_object('how', 'typed', 'message', NULL, 'conversation', c.id),
        'phone', json_object('how', 'typed', 'message', NULL, 'conversation', c.id),
        'email', json_object('how', 'typed', 'message', NULL, 'conversation', c.id),
        'service', json_object('how', 'typed', 'message', NULL, 'conversation', c.id),
        'area', json_object('how', 'typed', 'message', NULL, 'conversation', c.id),
        'urgency', json_object('how', 'typed', 'message', NULL, 'conversation', c.id))
    FROM conversations c WHERE c.lead_id = leads.id)
WHERE (SELECT count(*) FROM conversations c WHERE c.lead_id = leads.id) = 1;

-- Demo and simulated people (conversations keyed `sim:...`) live in a sandbox: never listed,
-- counted, exported, alerted or followed up.
ALTER TABLE leads ADD COLUMN sandbox INTEGER NOT NULL DEFAULT 0;
UPDATE leads SET sandbox = 1 WHERE id IN
    (SELECT lead_id FROM conversations WHERE lead_id IS NOT NULL GROUP BY lead_id
     HAVING min(substr(external_key, 1, 4) = 'sim:') = 1);
CREATE INDEX leads_real_by_created ON leads (sandbox, created_at);

-- Leads merged by the owner: who, when, and the merged lead as it was (JSON).
CREATE TABLE lead_merges (
    id INTEGER PRIMARY KEY,
    kept_id INTEGER NOT NULL,
    merged_id INTEGER NOT NULL,
    merged_lead TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX lead_merges_by_kept ON lead_merges (kept_id, id);
"""

V11_UNSUPPORTED_EVENTS = """
-- What people sent that the assistant cannot read or does not answer: messages WhatsApp or
-- Instagram could not render, types we do not know, media without text, reactions, edits,
-- deletions, system notices and malformed items. Kept for the owner, never silently dropped.
-- `message_id` is set when the message is also in the conversation (and answered there).
CREATE TABLE unsupported_events (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    external_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    sender TEXT,
    conversation_id INTEGER REFERENCES conversations (id) ON DELETE CASCADE,
    message_id INTEGER REFERENCES messages (id) ON DELETE CASCADE,
    provider_ts INTEGER,
    created_at TEXT NOT NULL,
    UNIQUE (channel, kind, external_id)
);
"""

V12_STABLE_LEAD_IDS_AND_SENDS_IN_FLIGHT = """
-- Lead ids are never reused: alert and follow-up keys name the lead by id, and SQLite would
-- otherwise give a deleted or merged lead's id to the next one (whose hot alert was then
-- skipped as already sent). The table is rebuilt with AUTOINCREMENT (foreign keys are off
-- while migrations run; store.db.migrate checks them after).
CREATE TABLE leads_v12 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
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
    last_interaction_at TEXT NOT NULL,
    budget TEXT,
    score INTEGER NOT NULL DEFAULT 0,
    reasons TEXT NOT NULL DEFAULT '[]',
    signals TEXT NOT NULL DEFAULT '[]',
    opted_out_at TEXT,
    last_user_message_at TEXT,
    sources TEXT NOT NULL DEFAULT '{}',
    sandbox INTEGER NOT NULL DEFAULT 0
);
INSERT INTO leads_v12 (id, channel, name, phone, email, service, area, urgency,
    classification, status, contacted, notes, created_at, updated_at, last_interaction_at,
    budget, score, reasons, signals, opted_out_at, last_user_message_at, sources, sandbox)
    SELECT id, channel, name, phone, email, service, area, urgency, classification, status,
    contacted, notes, created_at, updated_at, last_interaction_at, budget, score, reasons,
    signals, opted_out_at, last_user_message_at, sources, sandbox FROM leads;
-- Ids already given away (merged or deleted leads named in old alert keys) stay used.
INSERT INTO sqlite_sequence (name, seq) SELECT 'leads_v12', 0
    WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'leads_v12');
UPDATE sqlite_sequence SET seq = max(seq,
    coalesce((SELECT max(id) FROM leads), 0),
    coalesce((SELECT max(kept_id) FROM lead_merges), 0),
    coalesce((SELECT max(merged_id) FROM lead_merges), 0),
    coalesce((SELECT max(lead_id) FROM owner_notifications), 0),
    coalesce((SELECT max(CAST(substr(dedupe_key, 7, instr(substr(dedupe_key, 7), ':') - 1)
        AS INTEGER)) FROM owner_notifications WHERE dedupe_key LIKE 'alert:%'), 0))
    WHERE name = 'leads_v12';
DROP TABLE leads;
ALTER TABLE leads_v12 RENAME TO leads;
CREATE INDEX leads_by_classification ON leads (classification);
CREATE INDEX leads_by_channel ON leads (channel);
CREATE INDEX leads_follow_up ON leads (classification, last_user_message_at)
    WHERE opted_out_at IS NULL AND contacted = 0;
CREATE INDEX leads_real_by_created ON leads (sandbox, created_at);

-- A send to Meta marked before the request goes out: a row still marked after a restart was
-- cut by a crash mid-send and may have been delivered (counted when it is sent again).
ALTER TABLE outbox ADD COLUMN sending_since TEXT;
"""

OPS_NOTICE_STATE = """
-- What each process last told operations about its health (OPS_EMAIL / OPS_WEBHOOK_URL):
-- the status, its reasons and when, so a restart neither repeats nor loses a notice. The
-- notices themselves are owner_notifications rows (event ops_*), queued in the same
-- transaction.
CREATE TABLE ops_notice_state (
    worker TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('ok', 'degraded', 'failing')),
    reasons TEXT NOT NULL DEFAULT '[]',
    notices INTEGER NOT NULL DEFAULT 0,
    notified_at TEXT,
    updated_at TEXT NOT NULL
);
"""

CLUSTER_LEASES_HEARTBEATS_LOGIN_FAILURES = """
-- Several processes (and servers) share one store: who owns what goes through it. A lease
-- names a piece of work (`leader`, `conversation:<id>`, ...) and its owner (sales/identity.py
-- `node/worker`) until `expires_at`; the owner renews it while it works, and another may take
-- it once it has expired (a dead process's work is taken over within the lease's time).
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    acquired_at TEXT NOT NULL
);
CREATE INDEX leases_by_owner ON leases (owner, expires_at);

-- Each live process beats here every few seconds with its actors' states (health, status).
CREATE TABLE heartbeats (
    worker TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    beat_at TEXT NOT NULL,
    actors TEXT NOT NULL DEFAULT '{}'
);

-- Failed dashboard logins per client, so the throttle holds across processes.
CREATE TABLE login_failures (
    id INTEGER PRIMARY KEY,
    client TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX login_failures_by_client ON login_failures (client, at);
"""

LEAD_COUNTERS = """
-- The dashboard's statistics as counters, kept by triggers in the transaction that writes
-- the leads and messages (issue 17): a load costs the same at 500 leads and 500,000. Real
-- leads only (sandbox = 0). `engaged`: contacted, or followed up to an end; `won`: sold.
CREATE TABLE lead_counts (
    channel TEXT NOT NULL,
    classification TEXT NOT NULL,
    engaged INTEGER NOT NULL,
    won INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (channel, classification, engaged, won)
);
-- Real leads by the day they were created (UTC). Counters at 0 are deleted: a row only
-- for what there is.
CREATE TABLE lead_days (
    day TEXT PRIMARY KEY,
    n INTEGER NOT NULL
);
-- Each real conversation's first message from the person and first answer, and how many
-- conversations took each time (ms) from one to the other: the median first response.
CREATE TABLE conversation_firsts (
    conversation_id INTEGER PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    first_user_at TEXT,
    first_assistant_at TEXT
);
CREATE TABLE first_reply_times (
    ms INTEGER PRIMARY KEY,
    n INTEGER NOT NULL
);

CREATE TRIGGER leads_counted_insert AFTER INSERT ON leads WHEN NEW.sandbox = 0
BEGIN
    INSERT INTO lead_counts (channel, classification, engaged, won, n) VALUES (NEW.channel,
        NEW.classification, NEW.contacted = 1 OR NEW.status IN ('contacted', 'won', 'lost'),
        NEW.status = 'won', 1)
        ON CONFLICT (channel, classification, engaged, won) DO UPDATE SET n = n + 1;
    INSERT INTO lead_days (day, n) VALUES (substr(NEW.created_at, 1, 10), 1)
        ON CONFLICT (day) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER leads_counted_delete AFTER DELETE ON leads WHEN OLD.sandbox = 0
BEGIN
    UPDATE lead_counts SET n = n - 1 WHERE channel = OLD.channel
        AND classification = OLD.classification
        AND engaged = (OLD.contacted = 1 OR OLD.status IN ('contacted', 'won', 'lost'))
        AND won = (OLD.status = 'won');
    DELETE FROM lead_counts WHERE n <= 0 AND channel = OLD.channel
        AND classification = OLD.classification;
    UPDATE lead_days SET n = n - 1 WHERE day = substr(OLD.created_at, 1, 10);
    DELETE FROM lead_days WHERE day = substr(OLD.created_at, 1, 10) AND n <= 0;
END;
CREATE TRIGGER leads_counted_update
    AFTER UPDATE OF channel, classification, contacted, status, created_at, sandbox ON leads
    WHEN OLD.channel IS NOT NEW.channel OR OLD.classification IS NOT NEW.classification
        OR OLD.contacted IS NOT NEW.contacted OR OLD.status IS NOT NEW.status
        OR OLD.created_at IS NOT NEW.created_at OR OLD.sandbox IS NOT NEW.sandbox
BEGIN
    UPDATE lead_counts SET n = n - 1 WHERE OLD.sandbox = 0 AND channel = OLD.channel
        AND classification = OLD.classification
        AND engaged = (OLD.contacted = 1 OR OLD.status IN ('contacted', 'won', 'lost'))
        AND won = (OLD.status = 'won');
    DELETE FROM lead_counts WHERE n <= 0 AND channel = OLD.channel
        AND classification = OLD.classification;
    UPDATE lead_days SET n = n - 1
        WHERE OLD.sandbox = 0 AND day = substr(OLD.created_at, 1, 10);
    DELETE FROM lead_days WHERE day = substr(OLD.created_at, 1, 10) AND n <= 0;
    INSERT INTO lead_counts (channel, classification, engaged, won, n) SELECT NEW.channel,
        NEW.classification, NEW.contacted = 1 OR NEW.status IN ('contacted', 'won', 'lost'),
        NEW.status = 'won', 1 WHERE NEW.sandbox = 0
        ON CONFLICT (channel, classification, engaged, won) DO UPDATE SET n = n + 1;
    INSERT INTO lead_days (day, n) SELECT substr(NEW.created_at, 1, 10), 1
        WHERE NEW.sandbox = 0 ON CONFLICT (day) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER messages_first_of_conversation AFTER INSERT ON messages
    WHEN NOT EXISTS (SELECT 1 FROM conversations c WHERE c.id = NEW.conversation_id
        AND substr(c.external_key, 1, 4) = 'sim:')
BEGIN
    INSERT INTO conversation_firsts (conversation_id, first_user_at, first_assistant_at)
        VALUES (NEW.conversation_id,
            CASE WHEN NEW.role = 'user' THEN NEW.created_at END,
            CASE WHEN NEW.role = 'assistant' THEN NEW.created_at END)
        ON CONFLICT (conversation_id) DO UPDATE SET
            first_user_at = coalesce(min(first_user_at, excluded.first_user_at),
                first_user_at, excluded.first_user_at),
            first_assistant_at = coalesce(min(first_assistant_at, excluded.first_assistant_at),
                first_assistant_at, excluded.first_assistant_at);
END;
CREATE TRIGGER conversation_firsts_timed_insert AFTER INSERT ON conversation_firsts
    WHEN NEW.first_user_at IS NOT NULL AND NEW.first_assistant_at IS NOT NULL
BEGIN
    INSERT INTO first_reply_times (ms, n) VALUES (CAST(round((julianday(NEW.first_assistant_at)
        - julianday(NEW.first_user_at)) * 86400000) AS INTEGER), 1)
        ON CONFLICT (ms) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER conversation_firsts_timed_update AFTER UPDATE ON conversation_firsts
    WHEN OLD.first_user_at IS NOT NEW.first_user_at
        OR OLD.first_assistant_at IS NOT NEW.first_assistant_at
BEGIN
    UPDATE first_reply_times SET n = n - 1 WHERE OLD.first_user_at IS NOT NULL
        AND OLD.first_assistant_at IS NOT NULL AND ms = CAST(round((julianday(
            OLD.first_assistant_at) - julianday(OLD.first_user_at)) * 86400000) AS INTEGER);
    DELETE FROM first_reply_times WHERE n <= 0 AND ms = CAST(round((julianday(
        OLD.first_assistant_at) - julianday(OLD.first_user_at)) * 86400000) AS INTEGER);
    INSERT INTO first_reply_times (ms, n) SELECT CAST(round((julianday(NEW.first_assistant_at)
        - julianday(NEW.first_user_at)) * 86400000) AS INTEGER), 1
        WHERE NEW.first_user_at IS NOT NULL AND NEW.first_assistant_at IS NOT NULL
        ON CONFLICT (ms) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER conversation_firsts_timed_delete AFTER DELETE ON conversation_firsts
    WHEN OLD.first_user_at IS NOT NULL AND OLD.first_assistant_at IS NOT NULL
BEGIN
    UPDATE first_reply_times SET n = n - 1 WHERE ms = CAST(round((julianday(
        OLD.first_assistant_at) - julianday(OLD.first_user_at)) * 86400000) AS INTEGER);
    DELETE FROM first_reply_times WHERE n <= 0 AND ms = CAST(round((julianday(
        OLD.first_assistant_at) - julianday(OLD.first_user_at)) * 86400000) AS INTEGER);
END;

-- What the store holds already, counted once.
INSERT INTO lead_counts (channel, classification, engaged, won, n)
    SELECT channel, classification, contacted = 1 OR status IN ('contacted', 'won', 'lost'),
        status = 'won', count(*) FROM leads WHERE sandbox = 0 GROUP BY 1, 2, 3, 4;
INSERT INTO lead_days (day, n)
    SELECT substr(created_at, 1, 10), count(*) FROM leads WHERE sandbox = 0 GROUP BY 1;
INSERT INTO conversation_firsts (conversation_id, first_user_at, first_assistant_at)
    SELECT m.conversation_id, min(CASE WHEN m.role = 'user' THEN m.created_at END),
        min(CASE WHEN m.role = 'assistant' THEN m.created_at END)
    FROM messages m JOIN conversations c ON c.id = m.conversation_id
    WHERE substr(c.external_key, 1, 4) != 'sim:' GROUP BY m.conversation_id;
"""

LEAD_SEARCH = """
-- Substring search (issue 17, store/search.py) through trigram indexes, accent- and
-- case-blind, kept by triggers in the transaction that writes the rows: a lead's own
-- fields, and what people wrote in its conversations (their messages, not the assistant's
-- replies, which say the same to everyone). Contentless: the text stays in leads and
-- messages, a match is a rowid (the lead's or the message's id).
CREATE VIRTUAL TABLE lead_search USING fts5(name, phone, email, service, area, notes,
    content='', contentless_delete=1, tokenize='trigram remove_diacritics 1');
CREATE VIRTUAL TABLE message_search USING fts5(content,
    content='', contentless_delete=1, tokenize='trigram remove_diacritics 1');

CREATE TRIGGER leads_searched_insert AFTER INSERT ON leads
BEGIN
    INSERT INTO lead_search (rowid, name, phone, email, service, area, notes)
        VALUES (NEW.id, NEW.name, NEW.phone, NEW.email, NEW.service, NEW.area, NEW.notes);
END;
CREATE TRIGGER leads_searched_delete AFTER DELETE ON leads
BEGIN
    DELETE FROM lead_search WHERE rowid = OLD.id;
END;
CREATE TRIGGER leads_searched_update AFTER UPDATE OF name, phone, email, service, area, notes
    ON leads WHEN OLD.name IS NOT NEW.name OR OLD.phone IS NOT NEW.phone
        OR OLD.email IS NOT NEW.email OR OLD.service IS NOT NEW.service
        OR OLD.area IS NOT NEW.area OR OLD.notes IS NOT NEW.notes
BEGIN
    DELETE FROM lead_search WHERE rowid = OLD.id;
    INSERT INTO lead_search (rowid, name, phone, email, service, area, notes)
        VALUES (NEW.id, NEW.name, NEW.phone, NEW.email, NEW.service, NEW.area, NEW.notes);
END;
CREATE TRIGGER messages_searched_insert AFTER INSERT ON messages WHEN NEW.role = 'user'
BEGIN
    INSERT INTO message_search (rowid, content) VALUES (NEW.id, NEW.content);
END;
CREATE TRIGGER messages_searched_delete AFTER DELETE ON messages WHEN OLD.role = 'user'
BEGIN
    DELETE FROM message_search WHERE rowid = OLD.id;
END;

INSERT INTO lead_search (rowid, name, phone, email, service, area, notes)
    SELECT id, name, phone, email, service, area, notes FROM leads;
INSERT INTO message_search (rowid, content) SELECT id, content FROM messages WHERE role = 'user';

-- The lead list's order without a search (best first): read in index order, not sorted.
CREATE INDEX leads_real_by_score ON leads (sandbox, score DESC, updated_at DESC, id DESC);
"""

CONVERSATIONS_BY_LEAD = """
-- A lead's conversations (its detail, its transcript, its deletion) found without reading
-- every conversation of the store (issue 17: 26 ms a lead at 50,000 leads, growing).
CREATE INDEX conversations_by_lead ON conversations (lead_id);
"""

COUNTS_BY_STATUS_AND_MESSAGES = """
-- /metrics read every lead and message of the store on each scrape (2.4 s at 500,000 leads).
-- The lead counters are kept by status and the contacted flag (each figure's own definition
-- of contacted and won is taken from them), and messages are counted by channel and role,
-- real conversations only. A message goes with its conversation (a deletion request, the
-- sandbox emptied): the conversation's BEFORE DELETE subtracts them while they are there.
DROP TRIGGER leads_counted_insert;
DROP TRIGGER leads_counted_delete;
DROP TRIGGER leads_counted_update;
DROP TABLE lead_counts;
CREATE TABLE lead_counts (
    channel TEXT NOT NULL,
    classification TEXT NOT NULL,
    contacted INTEGER NOT NULL,
    status TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (channel, classification, contacted, status)
);
CREATE TABLE message_counts (
    channel TEXT NOT NULL,
    role TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (channel, role)
);

CREATE TRIGGER leads_counted_insert AFTER INSERT ON leads WHEN NEW.sandbox = 0
BEGIN
    INSERT INTO lead_counts (channel, classification, contacted, status, n)
        VALUES (NEW.channel, NEW.classification, NEW.contacted, NEW.status, 1)
        ON CONFLICT (channel, classification, contacted, status) DO UPDATE SET n = n + 1;
    INSERT INTO lead_days (day, n) VALUES (substr(NEW.created_at, 1, 10), 1)
        ON CONFLICT (day) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER leads_counted_delete AFTER DELETE ON leads WHEN OLD.sandbox = 0
BEGIN
    UPDATE lead_counts SET n = n - 1 WHERE channel = OLD.channel
        AND classification = OLD.classification AND contacted = OLD.contacted
        AND status = OLD.status;
    DELETE FROM lead_counts WHERE n <= 0 AND channel = OLD.channel
        AND classification = OLD.classification;
    UPDATE lead_days SET n = n - 1 WHERE day = substr(OLD.created_at, 1, 10);
    DELETE FROM lead_days WHERE day = substr(OLD.created_at, 1, 10) AND n <= 0;
END;
CREATE TRIGGER leads_counted_update
    AFTER UPDATE OF channel, classification, contacted, status, created_at, sandbox ON leads
    WHEN OLD.channel IS NOT NEW.channel OR OLD.classification IS NOT NEW.classification
        OR OLD.contacted IS NOT NEW.contacted OR OLD.status IS NOT NEW.status
        OR OLD.created_at IS NOT NEW.created_at OR OLD.sandbox IS NOT NEW.sandbox
BEGIN
    UPDATE lead_counts SET n = n - 1 WHERE OLD.sandbox = 0 AND channel = OLD.channel
        AND classification = OLD.classification AND contacted = OLD.contacted
        AND status = OLD.status;
    DELETE FROM lead_counts WHERE n <= 0 AND channel = OLD.channel
        AND classification = OLD.classification;
    UPDATE lead_days SET n = n - 1
        WHERE OLD.sandbox = 0 AND day = substr(OLD.created_at, 1, 10);
    DELETE FROM lead_days WHERE day = substr(OLD.created_at, 1, 10) AND n <= 0;
    INSERT INTO lead_counts (channel, classification, contacted, status, n)
        SELECT NEW.channel, NEW.classification, NEW.contacted, NEW.status, 1
        WHERE NEW.sandbox = 0
        ON CONFLICT (channel, classification, contacted, status) DO UPDATE SET n = n + 1;
    INSERT INTO lead_days (day, n) SELECT substr(NEW.created_at, 1, 10), 1
        WHERE NEW.sandbox = 0 ON CONFLICT (day) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER messages_counted_insert AFTER INSERT ON messages
    WHEN NOT EXISTS (SELECT 1 FROM conversations c WHERE c.id = NEW.conversation_id
        AND substr(c.external_key, 1, 4) = 'sim:')
BEGIN
    INSERT INTO message_counts (channel, role, n) VALUES (NEW.channel, NEW.role, 1)
        ON CONFLICT (channel, role) DO UPDATE SET n = n + 1;
END;
-- A message deleted alone (its conversation stays); with its conversation, see below.
CREATE TRIGGER messages_counted_delete AFTER DELETE ON messages
    WHEN EXISTS (SELECT 1 FROM conversations c WHERE c.id = OLD.conversation_id
        AND substr(c.external_key, 1, 4) <> 'sim:')
BEGIN
    UPDATE message_counts SET n = n - 1 WHERE channel = OLD.channel AND role = OLD.role;
END;
CREATE TRIGGER conversations_uncount_messages BEFORE DELETE ON conversations
    WHEN substr(OLD.external_key, 1, 4) <> 'sim:'
BEGIN
    UPDATE message_counts SET n = n - (SELECT count(*) FROM messages m
        WHERE m.conversation_id = OLD.id AND m.channel = message_counts.channel
        AND m.role = message_counts.role);
END;

INSERT INTO lead_counts (channel, classification, contacted, status, n)
    SELECT channel, classification, contacted, status, count(*) FROM leads
    WHERE sandbox = 0 GROUP BY 1, 2, 3, 4;
INSERT INTO message_counts (channel, role, n)
    SELECT m.channel, m.role, count(*) FROM messages m
    JOIN conversations c ON c.id = m.conversation_id
    WHERE substr(c.external_key, 1, 4) <> 'sim:' GROUP BY 1, 2;
"""

OWNER_NOTIFICATIONS_BY_LEAD = """
-- A lead's alerts found without reading every notification: /health/detailed asks for
-- each warm or hot lead without one, a lead's deletion deletes its own.
CREATE INDEX owner_notifications_by_lead ON owner_notifications (lead_id);
"""

# Tables the triggers keep from the others (counters, the search index): never copied from
# one store to another, the target's triggers fill them as the rows arrive.
# SQLite's full-text tables (store/search.py) come with shadow tables of their own.
SEARCH_TABLES = ("lead_search", "message_search")
SEARCH_SHADOWS = ("", "_data", "_idx", "_docsize", "_config", "_content")
DERIVED_TABLES = frozenset(
    {"lead_counts", "lead_days", "conversation_firsts", "first_reply_times", "message_counts"}
    | {table + shadow for table in SEARCH_TABLES for shadow in SEARCH_SHADOWS}
)

MIGRATIONS: tuple[str, ...] = (
    V1_CONVERSATIONS_MESSAGES_LEADS,
    V2_MESSAGING_CHANNELS,
    V3_LEADS_CLASSIFIER_ALERTS_FOLLOW_UPS,
    V4_BACKUPS,
    V5_ADMIN_SESSIONS,
    V6_LEGACY_IMPORT,
    V7_HAND_OFF,
    V8_PROMPT_VERSIONS,
    V9_STRATEGY_VERSIONS,
    V10_IDENTITY_CLAIMS_PROVENANCE_SANDBOX,
    V11_UNSUPPORTED_EVENTS,
    V12_STABLE_LEAD_IDS_AND_SENDS_IN_FLIGHT,
    OPS_NOTICE_STATE,
    CLUSTER_LEASES_HEARTBEATS_LOGIN_FAILURES,
    LEAD_COUNTERS,
    LEAD_SEARCH,
    CONVERSATIONS_BY_LEAD,
    COUNTS_BY_STATUS_AND_MESSAGES,
    OWNER_NOTIFICATIONS_BY_LEAD,
)
