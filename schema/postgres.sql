-- authmd database schema for PostgreSQL (issue 14).
--
-- The same numbered steps as the SQLite schema (`schema.sql`), each doing in
-- PostgreSQL what that step does in SQLite, so after the same steps a
-- database of either kind holds the same tables, columns, constraints and
-- indexes. Where a
-- SQLite step rebuilds a table (its only way to change a column or a CHECK),
-- this step alters the table in place. Steps are append-only, as there.
--
-- Opening a database (`store::postgres::open`) applies every step not yet in
-- `schema_steps`, all in one transaction under an advisory lock, recording
-- each step's number as it goes: two nodes opening at once apply each step
-- exactly once, and a failing step leaves the database as it was.
--
-- Types: text ids, BIGINT Unix times in milliseconds (`_ms`), BYTEA for
-- hashes, MACs and key material, BIGSERIAL for the ids SQLite assigns by
-- rowid (audit events, outbox messages). Constraints are named so that a
-- later step can replace them.

-- step 1
CREATE TABLE settings (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_ms  BIGINT NOT NULL
);

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    email       TEXT,                -- lower-cased, verified
    name        TEXT,
    created_ms  BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_by_email ON users (email) WHERE email IS NOT NULL;

CREATE TABLE registrations (
    id                  TEXT PRIMARY KEY,
    kind                TEXT NOT NULL
                        CONSTRAINT registrations_kind_check
                        CHECK (kind IN ('anonymous', 'agent_provider', 'email_verification')),
    status              TEXT NOT NULL
                        CONSTRAINT registrations_status_check
                        CHECK (status IN ('active', 'unclaimed', 'pending_claim', 'claimed',
                                          'expired', 'rejected', 'locked', 'revoked')),
    user_id             TEXT REFERENCES users (id),
    claim_token_hash    BYTEA UNIQUE,
    requested_credential_type TEXT
                        CONSTRAINT registrations_requested_credential_type_check
                        CHECK (requested_credential_type IN ('api_key', 'access_token')),
    created_ms          BIGINT NOT NULL,
    -- when an unclaimed registration stops working; NULL once claimed or for
    -- registrations that never expire this way
    expires_ms          BIGINT,
    updated_ms          BIGINT NOT NULL
);
CREATE INDEX registrations_by_status ON registrations (status, created_ms);
CREATE INDEX registrations_by_user ON registrations (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX registrations_by_expiry ON registrations (expires_ms) WHERE expires_ms IS NOT NULL;

CREATE TABLE credentials (
    id              TEXT PRIMARY KEY,
    registration_id TEXT NOT NULL REFERENCES registrations (id),
    kind            TEXT NOT NULL CONSTRAINT credentials_kind_check CHECK (kind IN ('api_key', 'access_token')),
    token_hash      BYTEA NOT NULL UNIQUE,
    scopes          TEXT NOT NULL,      -- space-separated
    created_ms      BIGINT NOT NULL,
    expires_ms      BIGINT,             -- NULL for API keys
    revoked_ms      BIGINT
);
CREATE INDEX credentials_by_registration ON credentials (registration_id);

CREATE TABLE audit_events (
    id                  BIGSERIAL PRIMARY KEY,
    at_ms               BIGINT NOT NULL,
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
    created_ms  BIGINT NOT NULL
);

-- Fetched JWKS and Client ID Metadata Documents, so a restart does not
-- refetch everything. Bodies are public documents.
CREATE TABLE fetched_documents (
    uri         TEXT PRIMARY KEY,
    body        BYTEA NOT NULL,
    fetched_ms  BIGINT NOT NULL,
    expires_ms  BIGINT NOT NULL
);

-- Replay protection: every (iss, jti) accepted, until the token could no
-- longer be accepted anyway (exp + skew).
CREATE TABLE seen_jtis (
    iss         TEXT NOT NULL,
    jti         TEXT NOT NULL,
    expires_ms  BIGINT NOT NULL,
    PRIMARY KEY (iss, jti)
);
CREATE INDEX seen_jtis_by_expiry ON seen_jtis (expires_ms);

-- A provider's user acting through agents: one registration per (iss, sub).
CREATE TABLE delegations (
    iss             TEXT NOT NULL,
    sub             TEXT NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users (id),
    registration_id TEXT NOT NULL REFERENCES registrations (id),
    created_ms      BIGINT NOT NULL,
    CONSTRAINT delegations_pkey PRIMARY KEY (iss, sub)
);
CREATE INDEX delegations_by_registration ON delegations (registration_id);
CREATE INDEX delegations_by_user ON delegations (user_id);

-- Provider revocations (SPEC.md 6): an ID-JAG for (iss, sub) issued at or
-- before `revoked_iat` (the logout token's iat, in seconds on the
-- provider's clock) is refused. Step 5 adds the server-clock mark beside it.
CREATE TABLE provider_revocations (
    iss         TEXT NOT NULL,
    sub         TEXT NOT NULL,
    revoked_iat BIGINT NOT NULL,
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
    token_hash      BYTEA NOT NULL UNIQUE,          -- SHA-256 of the claim_attempt_token
    status          TEXT NOT NULL
                    CONSTRAINT claim_attempts_status_check
                    CHECK (status IN ('open', 'superseded', 'cancelled', 'completed', 'closed')),
    created_ms      BIGINT NOT NULL,
    expires_ms      BIGINT NOT NULL,
    otp_mac         BYTEA,                          -- NULL: no live code
    otp_expires_ms  BIGINT,
    otp_failures    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX claim_attempts_open ON claim_attempts (registration_id) WHERE status = 'open';

-- Mail waiting to be delivered. Bodies hold a live link: they are erased
-- once the message is delivered or abandoned.
CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body_text       TEXT,
    body_html       TEXT,
    registration_id TEXT,
    status          TEXT NOT NULL
                    CONSTRAINT outbox_status_check CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL,
    last_error      TEXT,
    created_ms      BIGINT NOT NULL,
    done_ms         BIGINT
);
CREATE INDEX outbox_due ON outbox (next_attempt_ms) WHERE status = 'pending';

-- Keys this database generates for itself (the OTP HMAC key).
CREATE TABLE local_keys (
    name        TEXT PRIMARY KEY,
    value       BYTEA NOT NULL,
    created_ms  BIGINT NOT NULL
);

-- step 4
-- The sweeper prunes expired access tokens by expiry.
CREATE INDEX credentials_by_expiry ON credentials (expires_ms) WHERE expires_ms IS NOT NULL;
CREATE INDEX outbox_failed ON outbox (id) WHERE status = 'failed';

-- step 5
-- A revocation mark keeps whose clock it is on (issue 11): `revoked_iat` on
-- the provider's clock (seconds), `revoked_ms` on this server's clock (when
-- an operator, or any registration revocation, last revoked the
-- delegation). Either may be NULL; marks written before this step stay
-- provider-clock marks. SQLite rebuilds the table for this.
ALTER TABLE provider_revocations ALTER COLUMN revoked_iat DROP NOT NULL;
ALTER TABLE provider_revocations ADD COLUMN revoked_ms BIGINT;

-- step 6
-- The keys that sign the assertions authmd issues (SPEC-v0.7 5.3): the
-- P-256 private key as PKCS#8, which never leaves the database, and `kid`,
-- its public key's RFC 7638 thumbprint. The one key with `retired_ms` NULL
-- signs (the unique index allows one); a retired key is published and
-- accepted until its last assertion has expired.
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    pkcs8       BYTEA NOT NULL,
    created_ms  BIGINT NOT NULL,
    retired_ms  BIGINT
);
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys ((retired_ms IS NULL)) WHERE retired_ms IS NULL;

-- step 7
-- The current protocol generation (SPEC-v0.7): each registration belongs
-- to the generation that made it, and every service assertion authmd signs
-- is recorded by `jti`, so it can be refused before its `exp`.
ALTER TABLE registrations ADD COLUMN generation TEXT NOT NULL DEFAULT 'v0.1';
CREATE TABLE assertions (
    jti             TEXT PRIMARY KEY,
    registration_id TEXT NOT NULL REFERENCES registrations (id),
    kid             TEXT NOT NULL,
    created_ms      BIGINT NOT NULL,
    expires_ms      BIGINT NOT NULL,
    revoked_ms      BIGINT
);
CREATE INDEX assertions_by_registration ON assertions (registration_id);
CREATE INDEX assertions_by_expiry ON assertions (expires_ms);

-- step 8
-- A delegation `(iss, sub)` has one registration per protocol generation
-- (SPEC-v0.7 4.3): the key gains `generation` (rows so far are v0.1's; the
-- column has no default after, as in SQLite). A v0.7 ID-JAG registration
-- keeps the scopes granted when it was made; others leave `scopes` NULL.
-- SQLite rebuilds the table for this.
ALTER TABLE delegations ADD COLUMN generation TEXT NOT NULL DEFAULT 'v0.1';
ALTER TABLE delegations ALTER COLUMN generation DROP DEFAULT;
ALTER TABLE delegations DROP CONSTRAINT delegations_pkey;
ALTER TABLE delegations ADD CONSTRAINT delegations_pkey PRIMARY KEY (iss, sub, generation);
ALTER TABLE registrations ADD COLUMN scopes TEXT;

-- step 9
-- The current generation's `service_auth` registrations (SPEC-v0.7 4.2):
-- the kind's CHECK grows (SQLite rebuilds the table for this).
ALTER TABLE registrations DROP CONSTRAINT registrations_kind_check;
ALTER TABLE registrations ADD CONSTRAINT registrations_kind_check
    CHECK (kind IN ('anonymous', 'agent_provider', 'email_verification', 'service_auth'));

-- step 10
-- Signing in at the service (SPEC-v0.7 7): a session is a cookie value
-- stored only as its SHA-256, with a fixed lifetime; a pending sign-in is
-- keyed by the pre-session cookie's hash and holds the address typed,
-- where to go after, and the mailed code as an HMAC (never the code).
CREATE TABLE sessions (
    id_hash     BYTEA PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id),
    created_ms  BIGINT NOT NULL,
    expires_ms  BIGINT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_ms);
CREATE TABLE signins (
    presession_hash BYTEA PRIMARY KEY,
    email           TEXT NOT NULL,
    return_to       TEXT NOT NULL,
    code_mac        BYTEA,
    code_expires_ms BIGINT,
    failures        INTEGER NOT NULL DEFAULT 0,
    created_ms      BIGINT NOT NULL
);

-- step 11
-- The current generation's claim ceremony (SPEC-v0.7 6): an attempt
-- remembers who confirmed it on the page (and when: the code lives from
-- then); refresh tokens, stored only as their SHA-256, are issued when a
-- claim completes and rotate later.
ALTER TABLE claim_attempts ADD COLUMN confirmed_user_id TEXT REFERENCES users (id);
ALTER TABLE claim_attempts ADD COLUMN confirmed_ms BIGINT;
CREATE TABLE refresh_tokens (
    token_hash      BYTEA PRIMARY KEY,
    registration_id TEXT NOT NULL REFERENCES registrations (id),
    created_ms      BIGINT NOT NULL,
    expires_ms      BIGINT NOT NULL,
    spent_ms        BIGINT,
    revoked_ms      BIGINT
);
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
    created_ms      BIGINT NOT NULL,
    UNIQUE (iss, sub)
);

-- step 13
-- A provider's revocation ends its delegation (SPEC-v0.7 11): the row stays,
-- still naming the registration it made, but matching no longer finds it, so
-- a fresh ID-JAG matches again (usually as a first link). Linking again
-- reopens the row.
ALTER TABLE delegations ADD COLUMN ended_ms BIGINT;

-- step 14
-- Rate-limit windows kept in the database, for nodes that share it (SPEC.md
-- 9, SPEC-v0.7 15): a fixed-window counter per bucket and client, its
-- window begun by the first request it counts. A SQLite node, alone on its
-- file, counts in memory and leaves this table empty.
CREATE TABLE rate_windows (
    key        TEXT PRIMARY KEY,
    started_ms BIGINT NOT NULL,
    requests   BIGINT NOT NULL
);
CREATE INDEX rate_windows_by_start ON rate_windows (started_ms);

-- step 15
-- SQLite's step 15: when a registration's credentials were last used at
-- the guarded API (written in batches, the later instant kept), and the
-- user index ordered by creation time.
ALTER TABLE registrations ADD COLUMN last_used_ms BIGINT;
DROP INDEX registrations_by_user;
CREATE INDEX registrations_by_user ON registrations (user_id, created_ms) WHERE user_id IS NOT NULL;
