// Package deploy checks the shipping files — Dockerfile, docker-compose.yml,
// the nginx gateway — with the official parsers, since no Docker engine runs
// where the tests run: compose-go (the loader Docker Compose uses), BuildKit's
// Dockerfile parser (what docker build uses), and nginx itself.
package deploy
