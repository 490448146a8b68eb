package mcp

// Protocol versions Sluice speaks. The modern era starts at 2026-07-28: no
// initialize handshake, no sessions, per-request _meta.
const (
	Version20241105 = "2024-11-05"
	Version20250326 = "2025-03-26"
	Version20250618 = "2025-06-18"
	Version20251125 = "2025-11-25"
	Version20260728 = "2026-07-28"

	// LatestLegacy is the newest version negotiated with initialize.
	LatestLegacy = Version20251125
	// LatestModern is the newest per-request-metadata version.
	LatestModern = Version20260728
)

// LegacyVersions lists the initialize-era versions Sluice accepts, newest first.
var LegacyVersions = []string{Version20251125, Version20250618, Version20250326, Version20241105}

// ModernVersions lists the per-request-metadata versions Sluice accepts.
var ModernVersions = []string{Version20260728}

// Era is a protocol era as a peer speaks it.
type Era uint8

const (
	// EraUnknown means the era has not been determined yet.
	EraUnknown Era = iota
	// EraLegacy is 2024-11-05 through 2025-11-25: initialize and sessions.
	EraLegacy
	// EraModern is 2026-07-28 and later: server/discover and per-request _meta.
	EraModern
)

func (e Era) String() string {
	switch e {
	case EraLegacy:
		return "legacy"
	case EraModern:
		return "modern"
	}
	return "unknown"
}

// IsModernVersion reports whether v is a version of the modern era. Versions
// are dates, so they compare as strings.
func IsModernVersion(v string) bool { return v >= Version20260728 && len(v) == len(Version20260728) }

// SupportedVersion reports whether Sluice speaks protocol version v.
func SupportedVersion(v string) bool {
	for _, s := range LegacyVersions {
		if s == v {
			return true
		}
	}
	for _, s := range ModernVersions {
		if s == v {
			return true
		}
	}
	return false
}

// Meta keys of the modern era's per-request metadata.
const (
	MetaProtocolVersion    = "io.modelcontextprotocol/protocolVersion"
	MetaClientInfo         = "io.modelcontextprotocol/clientInfo"
	MetaClientCapabilities = "io.modelcontextprotocol/clientCapabilities"
	MetaServerInfo         = "io.modelcontextprotocol/serverInfo"
	MetaLogLevel           = "io.modelcontextprotocol/logLevel"
	MetaSubscriptionID     = "io.modelcontextprotocol/subscriptionId"
)

// Method names.
const (
	MethodInitialize               = "initialize"
	MethodDiscover                 = "server/discover"
	MethodPing                     = "ping"
	MethodToolsList                = "tools/list"
	MethodToolsCall                = "tools/call"
	MethodPromptsList              = "prompts/list"
	MethodPromptsGet               = "prompts/get"
	MethodResourcesList            = "resources/list"
	MethodResourceTemplatesList    = "resources/templates/list"
	MethodResourcesRead            = "resources/read"
	MethodResourcesSubscribe       = "resources/subscribe"
	MethodResourcesUnsubscribe     = "resources/unsubscribe"
	MethodCompletionComplete       = "completion/complete"
	MethodLoggingSetLevel          = "logging/setLevel"
	MethodSubscriptionsListen      = "subscriptions/listen"
	MethodElicitationCreate        = "elicitation/create"
	MethodSamplingCreateMessage    = "sampling/createMessage"
	MethodRootsList                = "roots/list"
	NotifInitialized               = "notifications/initialized"
	NotifCancelled                 = "notifications/cancelled"
	NotifProgress                  = "notifications/progress"
	NotifMessage                   = "notifications/message"
	NotifToolsListChanged          = "notifications/tools/list_changed"
	NotifPromptsListChanged        = "notifications/prompts/list_changed"
	NotifResourcesListChanged      = "notifications/resources/list_changed"
	NotifResourcesUpdated          = "notifications/resources/updated"
	NotifRootsListChanged          = "notifications/roots/list_changed"
	NotifElicitationComplete       = "notifications/elicitation/complete"
	NotifSubscriptionsAcknowledged = "notifications/subscriptions/acknowledged"
)
