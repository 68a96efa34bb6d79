-- SPDX-License-Identifier: MIT
-- Parley schema version 1 for SQLite. Every table is keyed by "owner", the
-- bare JID (or domain) the data belongs to. Times are microseconds since
-- the Unix epoch (UTC). Kept in step with store_schema.c and pgsql/.

CREATE TABLE authreg (
    "owner" TEXT NOT NULL PRIMARY KEY,
    "scram1_salt" TEXT, "scram1_iter" INTEGER, "scram1_stored" TEXT, "scram1_server" TEXT,
    "scram256_salt" TEXT, "scram256_iter" INTEGER, "scram256_stored" TEXT,
    "scram256_server" TEXT,
    "created" INTEGER
);

CREATE TABLE active ("owner" TEXT NOT NULL PRIMARY KEY, "time" INTEGER);
CREATE TABLE logout ("owner" TEXT NOT NULL PRIMARY KEY, "time" INTEGER, "status" TEXT);

CREATE TABLE roster_items (
    "owner" TEXT NOT NULL, "jid" TEXT NOT NULL, "name" TEXT,
    "sub_to" INTEGER, "sub_from" INTEGER, "ask_out" INTEGER, "ask_in" INTEGER,
    "approved" INTEGER, "ask_in_xml" TEXT, "in_roster" INTEGER,
    PRIMARY KEY ("owner", "jid")
);
CREATE TABLE roster_groups (
    "owner" TEXT NOT NULL, "jid" TEXT NOT NULL, "grp" TEXT NOT NULL,
    PRIMARY KEY ("owner", "jid", "grp")
);

CREATE TABLE queue (
    "seq" INTEGER PRIMARY KEY AUTOINCREMENT, "owner" TEXT NOT NULL,
    "ts" INTEGER, "xml" TEXT, "origin" TEXT
);
CREATE INDEX queue_owner ON queue ("owner", "seq");
-- A replayed stanza (docs/protocol.md §8) is stored once.
CREATE UNIQUE INDEX queue_origin ON queue ("owner", "origin") WHERE "origin" IS NOT NULL;

CREATE TABLE vcard ("owner" TEXT NOT NULL PRIMARY KEY, "xml" TEXT, "photo_hash" TEXT);
CREATE TABLE private (
    "owner" TEXT NOT NULL, "ns" TEXT NOT NULL, "xml" TEXT, PRIMARY KEY ("owner", "ns")
);

CREATE TABLE privacy_items (
    "owner" TEXT NOT NULL, "list" TEXT NOT NULL, "ord" INTEGER NOT NULL,
    "type" TEXT, "value" TEXT, "deny" INTEGER, "block" INTEGER,
    PRIMARY KEY ("owner", "list", "ord")
);
CREATE TABLE privacy_default ("owner" TEXT NOT NULL PRIMARY KEY, "list" TEXT);

CREATE TABLE disco_items (
    "owner" TEXT NOT NULL, "jid" TEXT NOT NULL, "node" TEXT NOT NULL, "name" TEXT,
    PRIMARY KEY ("owner", "jid", "node")
);

CREATE TABLE motd_message ("owner" TEXT NOT NULL PRIMARY KEY, "xml" TEXT);
CREATE TABLE motd_times ("owner" TEXT NOT NULL PRIMARY KEY, "time" INTEGER);
CREATE TABLE vacation_settings (
    "owner" TEXT NOT NULL PRIMARY KEY, "start" INTEGER, "end" INTEGER, "message" TEXT
);

CREATE TABLE archive (
    "seq" INTEGER PRIMARY KEY AUTOINCREMENT, "owner" TEXT NOT NULL,
    "id" TEXT NOT NULL, "ts" INTEGER NOT NULL, "with_jid" TEXT, "stanza" TEXT
);
CREATE UNIQUE INDEX archive_owner_id ON archive ("owner", "id");
CREATE INDEX archive_owner_ts ON archive ("owner", "ts");
CREATE INDEX archive_owner_with ON archive ("owner", "with_jid", "ts");

CREATE TABLE pep_nodes (
    "owner" TEXT NOT NULL, "node" TEXT NOT NULL, "config" TEXT, PRIMARY KEY ("owner", "node")
);
CREATE TABLE pep_items (
    "owner" TEXT NOT NULL, "node" TEXT NOT NULL, "item" TEXT NOT NULL,
    "ts" INTEGER, "publisher" TEXT, "payload" TEXT,
    PRIMARY KEY ("owner", "node", "item")
);
CREATE INDEX pep_items_ts ON pep_items ("owner", "node", "ts");

CREATE TABLE caps ("owner" TEXT NOT NULL PRIMARY KEY, "xml" TEXT);

CREATE TABLE muc_rooms ("owner" TEXT NOT NULL PRIMARY KEY, "config" TEXT, "subject" TEXT);
CREATE TABLE muc_affiliations (
    "owner" TEXT NOT NULL, "jid" TEXT NOT NULL, "affiliation" TEXT, "nick" TEXT,
    PRIMARY KEY ("owner", "jid")
);

CREATE TABLE counters (
    "owner" TEXT NOT NULL, "name" TEXT NOT NULL, "value" INTEGER NOT NULL,
    PRIMARY KEY ("owner", "name")
);
