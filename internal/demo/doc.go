// Package demo is a small MCP server over fictitious company data that
// Sluice ships inside its own binary, so that a first run has something real
// to put a gateway in front of.
//
// The server is an ordinary MCP server built with the official go-sdk. It
// exposes a customer directory (find_customers, get_customer), a document
// store (search_documents, read_document, and the resources
// demo://documents/{id}), an outbox (send_email, which records messages and
// never sends them, readable and subscribable as demo://outbox), and one
// prompt (summarize_customer) with completions for its argument.
//
// Every record is invented, but the data is shaped to exercise a gateway:
// customers carry e-mail addresses, phone numbers and well-known payment test
// card numbers (all pass the Luhn check, some written with spaces or dashes);
// documents carry an API key, cloud credentials, a database URL with a
// password, an IBAN and personal data; one customer note carries an
// instruction aimed at an agent, the kind of untrusted text that a lineage
// guard should notice before it reaches an external sink such as send_email.
// Phone numbers use ranges reserved for fiction, e-mail addresses use domains
// reserved for examples, and no secret in here is live.
//
// Sluice runs the server as a child of its own binary over stdio through
// [Run]; tests connect to [NewServer] directly.
package demo
