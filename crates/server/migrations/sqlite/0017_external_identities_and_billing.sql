-- Users of an external identity provider (issue 17): the provider's
-- `iss` + `sub` name one Colloquy user, created the first time a valid token
-- of theirs is seen. `issuer` is '' when the token carries none.
CREATE TABLE external_identities (
    issuer     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX external_identities_by_user ON external_identities (user_id);

-- Stripe webhook events already acted on, stored in the same transaction as
-- the plan change they cause: a replayed event finds its id and changes nothing.
CREATE TABLE stripe_events (
    event_id    TEXT PRIMARY KEY,
    event_type  TEXT NOT NULL,
    received_at INTEGER NOT NULL
);

-- Which Stripe customer and subscription pay for which user, learnt from
-- `checkout.session.completed`, so subscription events find their user.
CREATE TABLE stripe_customers (
    user_id         TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    customer_id     TEXT,
    subscription_id TEXT UNIQUE,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX stripe_customers_by_customer ON stripe_customers (customer_id);
