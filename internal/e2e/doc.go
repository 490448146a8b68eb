// Package e2e tests Sluice end to end, as a user runs it: the real sluice
// binary, started as a subprocess, in front of the real MCP reference servers
// from npm (@modelcontextprotocol/server-everything, server-filesystem and
// server-memory), all three launched by Sluice over stdio at once, and driven
// by the official Go SDK's client.
//
// The package has no code of its own, only tests. What they prove:
//
//   - Aggregation: one endpoint lists the tools of all three servers under
//     namespaced names (everything__echo, filesystem__read_text_file,
//     memory__create_entities, ...) and routes a call of each back to its
//     server, whose effects are checked on disk (a file written through the
//     filesystem server, an entity saved in the memory server's file).
//   - Both protocol eras downstream: every check runs once with a client that
//     negotiates 2026-07-28 (server/discover, no session) and once with one
//     that negotiates 2025-11-25 (initialize, Mcp-Session-Id), while the
//     reference servers themselves speak the legacy era, so the modern runs
//     go through Sluice's era bridge.
//   - Streaming and control: progress notifications of a long-running tool
//     reach the client; a cancelled call returns promptly and leaves the
//     session usable.
//   - Server-to-client requests: the everything server's elicitation and
//     sampling tools reach the client's handlers and their answers reach the
//     tool (a legacy server request carried to a modern client as an
//     input_required result and back).
//   - Resources, prompts and completions: list, read, subscribe (an update
//     notification arrives), unsubscribe (updates stop), prompts with
//     arguments, and argument completion for a prompt and a resource template.
//   - The stdio front end: `sluice stdio` serves the same three servers to a
//     client that launched it.
//   - Shutdown: when Sluice is stopped, the servers it launched are gone too.
//
// The peers are installed on first use by [github.com/sluicehq/sluice/internal/testenv]
// (node 22+, npm packages pinned by test/npm/package-lock.json); the first run
// downloads them, later runs start in a few seconds.
package e2e
