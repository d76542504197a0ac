-- authmd database schema.
--
-- Opening a database applies every step numbered above its PRAGMA user_version
-- in one transaction, setting user_version after each step, so a failing step
-- leaves the database as it was before any of them ran. Steps
-- are append-only: a released step is never edited; a change is a new step.
--
-- Conventions (portable to PostgreSQL later): text ids, integer Unix times in
-- milliseconds (`_ms`), secrets only as SHA-256 hashes (`_hash`, 32-byte blobs),
-- every lookup that grows with the number of rows served by an index.

-- step 1
CREATE TABLE settings (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_ms  INTEGER NOT NULL
);

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    email       TEXT,                -- lower-cased, verified
    name        TEXT,
    created_ms  INTEGER NOT NULL
);
CREATE UNIQUE INDEX users_by_email ON users (email) WHERE email IS NOT NULL;

CREATE TABLE registrations (
    id                  TEXT PRIMARY KEY,
    kind                TEXT NOT NULL
                        CHECK (kind IN ('anonymous', 'agent_provider', 'email_verification')),
    status              TEXT NOT NULL
                        CHECK (status IN ('active', 'unclaimed', 'pending_claim', 'claimed',
                                          'expired', 'rejected', 'locked', 'revoked')),
    user_id             TEXT REFERENCES users (id),
    claim_token_hash    BLOB UNIQUE,
    requested_credential_type TEXT
                        CHECK (requested_credential_type IN ('api_key', 'access_token')),
    created_ms          INTEGER NOT NULL,
    -- when an unclaimed registration stops working; NULL once claimed or for
    -- registrations that never expire this way
    expires_ms          INTEGER,
    updated_ms          INTEGER NOT NULL
);
CREATE INDEX registrations_by_status ON registrations (status, created_ms);
CREATE INDEX registrations_by_user ON registrations (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX registrations_by_expiry ON registrations (expires_ms) WHERE expires_ms IS NOT NULL;

CREATE TABLE credentials (
    id              TEXT PRIMARY KEY,
    registration_id TEXT NOT NULL REFERENCES registrations (id),
    kind            TEXT NOT NULL CHECK (kind IN ('api_key', 'access_token')),
    token_hash      BLOB NOT NULL UNIQUE,
    scopes          TEXT NOT NULL,      -- space-separated
    created_ms      INTEGER NOT NULL,
    expires_ms      INTEGER,            -- NULL for API keys
    revoked_ms      INTEGER
);
CREATE INDEX credentials_by_registration ON credentials (registration_id);

CREATE TABLE audit_events (
    id                  INTEGER PRIMARY KEY,
    at_ms               INTEGER NOT NULL,
    event               TEXT NOT NULL,
    registration_id     TEXT,
    client_ip           TEXT,
    iss                 TEXT,
    sub                 TEXT,
    agent_platform      TEXT,
    agent_context_id    TEXT,
    detail              TEXT NOT NULL DEFAULT '{}'   -- JSON object of the event's other fields
);
CREATE INDEX audit_events_by_time ON audit_events (at_ms);
CREATE INDEX audit_events_by_event ON audit_events (event, at_ms);
CREATE INDEX audit_events_by_registration ON audit_events (registration_id) WHERE registration_id IS NOT NULL;

-- step 2
-- ID-JAG registration (SPEC.md sections 3.2, 4 and 6).
ALTER TABLE users ADD COLUMN phone_number TEXT;     -- verified
CREATE UNIQUE INDEX users_by_phone ON users (phone_number) WHERE phone_number IS NOT NULL;

-- The trust list: agent providers whose ID-JAGs are accepted.
CREATE TABLE providers (
    issuer      TEXT PRIMARY KEY,
    jwks_uri    TEXT,               -- NULL: <issuer>/.well-known/jwks.json
    client_id   TEXT,               -- NULL: not pinned
    name        TEXT,
    created_ms  INTEGER NOT NULL
);

-- Fetched JWKS and Client ID Metadata Documents, so a restart does not
-- refetch everything. Bodies are public documents.
CREATE TABLE fetched_documents (
    uri         TEXT PRIMARY KEY,
    body        BLOB NOT NULL,
    fetched_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL
);

-- Replay protection: every (iss, jti) accepted, until the token could no
-- longer be accepted anyway (exp + skew).
CREATE TABLE seen_jtis (
    iss         TEXT NOT NULL,
    jti         TEXT NOT NULL,
    expires_ms  INTEGER NOT NULL,
    PRIMARY KEY (iss, jti)
);
CREATE INDEX seen_jtis_by_expiry ON seen_jtis (expires_ms);

-- A provider's user acting through agents: one registration per (iss, sub).
CREATE TABLE delegations (
    iss             TEXT NOT NULL,
    sub             TEXT NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users (id),
    registration_id TEXT NOT NULL REFERENCES registrations (id),
    created_ms      INTEGER NOT NULL,
    PRIMARY KEY (iss, sub)
);
CREATE INDEX delegations_by_registration ON delegations (registration_id);
CREATE INDEX delegations_by_user ON delegations (user_id);

-- Provider revocations (SPEC.md 6): an ID-JAG for (iss, sub) issued at or
-- before `revoked_iat` (the logout token's iat, on the provider's clock) is refused.
-- (Step 5 adds the server-clock mark beside it.)
CREATE TABLE provider_revocations (
    iss         TEXT NOT NULL,
    sub         TEXT NOT NULL,
    revoked_iat INTEGER NOT NULL,
    PRIMARY KEY (iss, sub)
);

-- step 3
-- The claim ceremony (SPEC.md 3.3 and 5) and the mail outbox.
ALTER TABLE registrations ADD COLUMN email TEXT;                 -- verified-email registrations: the address, lower-cased
ALTER TABLE registrations ADD COLUMN claim_failures INTEGER NOT NULL DEFAULT 0;

-- One emailed link. At most one is `open` per registration; a new one
-- supersedes it. The code (OTP) lives on its attempt, as an HMAC under the
-- database's own key, bound to the attempt.
CREATE TABLE claim_attempts (
    id              TEXT PRIMARY KEY,               -- claim_attempt_id (not secret)
    registration_id TEXT NOT NULL REFERENCES registrations (id),
    email           TEXT NOT NULL,
    token_hash      BLOB NOT NULL UNIQUE,           -- SHA-256 of the claim_attempt_token
    status          TEXT NOT NULL CHECK (status IN ('open', 'superseded', 'cancelled', 'completed', 'closed')),
    created_ms      INTEGER NOT NULL,
    expires_ms      INTEGER NOT NULL,
    otp_mac         BLOB,                           -- NULL: no live code
    otp_expires_ms  INTEGER,
    otp_failures    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX claim_attempts_open ON claim_attempts (registration_id) WHERE status = 'open';

-- Mail waiting to be delivered. Bodies hold a live link: they are erased
-- once the message is delivered or abandoned.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body_text       TEXT,
    body_html       TEXT,
    registration_id TEXT,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    last_error      TEXT,
    created_ms      INTEGER NOT NULL,
    done_ms         INTEGER
);
CREATE INDEX outbox_due ON outbox (next_attempt_ms) WHERE status = 'pending';

-- Keys this database generates for itself (the OTP HMAC key).
CREATE TABLE local_keys (
    name        TEXT PRIMARY KEY,
    value       BLOB NOT NULL,
    created_ms  INTEGER NOT NULL
);

-- step 4
-- The sweeper prunes expired access tokens by expiry.
CREATE INDEX credentials_by_expiry ON credentials (expires_ms) WHERE expires_ms IS NOT NULL;
CREATE INDEX outbox_failed ON outbox (id) WHERE status = 'failed';

-- step 5
-- A revocation mark keeps whose clock it is on (issue 11). `revoked_iat` is
-- on the provider's clock: the latest logout token's `iat`, in seconds; an
-- ID-JAG whose `iat` is at or before it is refused. `revoked_ms` is on this
-- server's clock: when an operator (or any registration revocation) last
-- revoked the delegation; an ID-JAG that arrived at or before it is refused.
-- Either may be NULL. Marks written before this step came from both clocks
-- and stay provider-clock marks, as they were compared until now.
CREATE TABLE provider_revocations_by_clock (
    iss         TEXT NOT NULL,
    sub         TEXT NOT NULL,
    revoked_iat INTEGER,
    revoked_ms  INTEGER,
    PRIMARY KEY (iss, sub)
);
INSERT INTO provider_revocations_by_clock (iss, sub, revoked_iat)
    SELECT iss, sub, revoked_iat FROM provider_revocations;
DROP TABLE provider_revocations;
ALTER TABLE provider_revocations_by_clock RENAME TO provider_revocations;

-- step 6
-- The keys that sign the assertions authmd issues (SPEC-v0.7 5.3): the
-- P-256 private key as PKCS#8, which never leaves the database, and `kid`,
-- its public key's RFC 7638 thumbprint. The one key with `retired_ms` NULL
-- signs (the unique index allows one); a retired key is published and
-- accepted until its last assertion has expired.
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    pkcs8       BLOB NOT NULL,
    created_ms  INTEGER NOT NULL,
    retired_ms  INTEGER
);
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys ((retired_ms IS NULL)) WHERE retired_ms IS NULL;

-- step 7
-- The current protocol generation (SPEC-v0.7): each registration belongs
-- to the generation that made it, and every service assertion authmd signs
-- is recorded by `jti`, so it can be refused before its `exp` (its
-- registration ended, the claim completed, a refresh family was revoked).
ALTER TABLE registrations ADD COLUMN generation TEXT NOT NULL DEFAULT 'v0.1';
CREATE TABLE assertions (
    jti             TEXT PRIMARY KEY,
    registration_id TEXT NOT NULL REFERENCES registrations (id),
    kid             TEXT NOT NULL,
    created_ms      INTEGER NOT NULL,
    expires_ms      INTEGER NOT NULL,
    revoked_ms      INTEGER
) WITHOUT ROWID;
CREATE INDEX assertions_by_registration ON assertions (registration_id);
CREATE INDEX assertions_by_expiry ON assertions (expires_ms);

-- step 8
-- A delegation `(iss, sub)` has one registration per protocol generation
-- (SPEC-v0.7 4.3): the key gains `generation`. A v0.7 ID-JAG registration
-- keeps the scopes granted when it was made (the token endpoint hands them
-- out); other registrations leave `scopes` NULL.
CREATE TABLE delegations_by_generation (
    iss             TEXT NOT NULL,
    sub             TEXT NOT NULL,
    generation      TEXT NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users (id),
    registration_id TEXT NOT NULL REFERENCES registrations (id),
    created_ms      INTEGER NOT NULL,
    PRIMARY KEY (iss, sub, generation)
);
INSERT INTO delegations_by_generation (iss, sub, generation, user_id, registration_id, created_ms)
    SELECT iss, sub, 'v0.1', user_id, registration_id, created_ms FROM delegations;
DROP TABLE delegations;
ALTER TABLE delegations_by_generation RENAME TO delegations;
CREATE INDEX delegations_by_registration ON delegations (registration_id);
CREATE INDEX delegations_by_user ON delegations (user_id);
ALTER TABLE registrations ADD COLUMN scopes TEXT;

-- step 9
-- The current generation's `service_auth` registrations (SPEC-v0.7 4.2):
-- the kind's CHECK grows, which SQLite allows only by rebuilding the table
-- (its documented procedure; `store::sqlite::migrate` runs the steps with
-- foreign keys off and checks them before it commits).
CREATE TABLE registrations_v9 (
    id                  TEXT PRIMARY KEY,
    kind                TEXT NOT NULL
                        CHECK (kind IN ('anonymous', 'agent_provider', 'email_verification', 'service_auth')),
    status              TEXT NOT NULL
                        CHECK (status IN ('active', 'unclaimed', 'pending_claim', 'claimed',
                                          'expired', 'rejected', 'locked', 'revoked')),
    user_id             TEXT REFERENCES users (id),
    claim_token_hash    BLOB UNIQUE,
    requested_credential_type TEXT
                        CHECK (requested_credential_type IN ('api_key', 'access_token')),
    created_ms          INTEGER NOT NULL,
    expires_ms          INTEGER,
    updated_ms          INTEGER NOT NULL,
    email               TEXT,
    claim_failures      INTEGER NOT NULL DEFAULT 0,
    generation          TEXT NOT NULL DEFAULT 'v0.1',
    scopes              TEXT
);
INSERT INTO registrations_v9
    (id, kind, status, user_id, claim_token_hash, requested_credential_type, created_ms, expires_ms, updated_ms,
     email, claim_failures, generation, scopes)
    SELECT id, kind, status, user_id, claim_token_hash, requested_credential_type, created_ms, expires_ms, updated_ms,
           email, claim_failures, generation, scopes
    FROM registrations;
DROP TABLE registrations;
ALTER TABLE registrations_v9 RENAME TO registrations;
CREATE INDEX registrations_by_status ON registrations (status, created_ms);
CREATE INDEX registrations_by_user ON registrations (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX registrations_by_expiry ON registrations (expires_ms) WHERE expires_ms IS NOT NULL;

-- step 10
-- Signing in at the service (SPEC-v0.7 7): a session is a cookie value
-- stored only as its SHA-256, with a fixed lifetime; a pending sign-in is
-- keyed by the pre-session cookie's hash and holds the address typed,
-- where to go after, and the mailed code as an HMAC (never the code).
CREATE TABLE sessions (
    id_hash     BLOB PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id),
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_ms);
CREATE TABLE signins (
    presession_hash BLOB PRIMARY KEY,
    email           TEXT NOT NULL,
    return_to       TEXT NOT NULL,
    code_mac        BLOB,
    code_expires_ms INTEGER,
    failures        INTEGER NOT NULL DEFAULT 0,
    created_ms      INTEGER NOT NULL
) WITHOUT ROWID;

-- step 11
-- The current generation's claim ceremony (SPEC-v0.7 6): an attempt
-- remembers who confirmed it on the page (and when: the code lives from
-- then); refresh tokens, stored only as their SHA-256, are issued when a
-- claim completes and rotate later.
ALTER TABLE claim_attempts ADD COLUMN confirmed_user_id TEXT REFERENCES users (id);
ALTER TABLE claim_attempts ADD COLUMN confirmed_ms INTEGER;
CREATE TABLE refresh_tokens (
    token_hash      BLOB PRIMARY KEY,
    registration_id TEXT NOT NULL REFERENCES registrations (id),
    created_ms      INTEGER NOT NULL,
    expires_ms      INTEGER NOT NULL,
    spent_ms        INTEGER,
    revoked_ms      INTEGER
) WITHOUT ROWID;
CREATE INDEX refresh_tokens_by_registration ON refresh_tokens (registration_id);

-- step 12
-- An ID-JAG whose verified address names an existing account with no
-- delegation is a first link (SPEC-v0.7 4.3): its registration waits for
-- that person's confirmation, and the delegation is made only then. One
-- pending link per `(iss, sub)`.
CREATE TABLE pending_links (
    registration_id TEXT PRIMARY KEY REFERENCES registrations (id),
    iss             TEXT NOT NULL,
    sub             TEXT NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users (id),
    created_ms      INTEGER NOT NULL,
    UNIQUE (iss, sub)
);

-- step 13
-- A provider's revocation ends its delegation (SPEC-v0.7 11): the row stays,
-- still naming the registration it made, but matching no longer finds it, so
-- a fresh ID-JAG matches again (usually as a first link). Linking again
-- reopens the row.
ALTER TABLE delegations ADD COLUMN ended_ms INTEGER;

-- step 14
-- Rate-limit windows kept in the database, for nodes that share it (SPEC.md
-- 9, SPEC-v0.7 15): a fixed-window counter per bucket and client, its
-- window begun by the first request it counts. A SQLite node, alone on its
-- file, counts in memory and leaves this table empty.
CREATE TABLE rate_windows (
    key        TEXT PRIMARY KEY,
    started_ms INTEGER NOT NULL,
    requests   INTEGER NOT NULL
);
CREATE INDEX rate_windows_by_start ON rate_windows (started_ms);

-- step 15
-- A person's own page lists the agents acting for them (issue 15): each
-- registration keeps when its credentials were last used at the guarded API.
-- Requests do not write it: each node notes uses in memory and writes them
-- in batches, at most one write per registration and minute, keeping the
-- later instant (`last_used::LastUsed`), so nodes sharing a database agree.
-- NULL: never used (or not since this step). The list goes by user, newest
-- first: the user index gains the creation time, and replaces the old one.
ALTER TABLE registrations ADD COLUMN last_used_ms INTEGER;
DROP INDEX registrations_by_user;
CREATE INDEX registrations_by_user ON registrations (user_id, created_ms) WHERE user_id IS NOT NULL;
