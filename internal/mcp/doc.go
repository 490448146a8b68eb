// Package mcp holds Sluice's JSON-RPC 2.0 and MCP wire layer.
//
// A [Message] keeps every part of a message as the exact bytes the peer sent:
// request IDs are never reformatted, params and results are not decoded
// unless a guard asks for a field, and members the gateway does not act on
// are forwarded unchanged. [Decode] is strict: duplicate member names,
// invalid UTF-8, wrong "jsonrpc" versions, batches, oversized messages and
// excessive nesting are rejected with errors that map to JSON-RPC codes.
//
// Member names are matched case-sensitively, and a member whose name differs
// from one the gateway acts on only by case ("Method", "NAME") is rejected:
// a peer that decodes names case-insensitively would otherwise see a
// different message than the one the gateway checked.
package mcp
