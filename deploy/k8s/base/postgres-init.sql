-- Runs once, when the Postgres volume is first created: one database per
-- service, as in DESIGN.md. Each service migrates its own schema at start.
CREATE DATABASE users;
CREATE DATABASE catalog;
CREATE DATABASE orders;
