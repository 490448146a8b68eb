package mcp_test

import (
	"testing"

	"github.com/sluicehq/sluice/internal/mcp"
)

func TestVersions(t *testing.T) {
	tests := []struct {
		v         string
		supported bool
		modern    bool
	}{
		{mcp.Version20241105, true, false},
		{mcp.Version20250326, true, false},
		{mcp.Version20250618, true, false},
		{mcp.Version20251125, true, false},
		{mcp.Version20260728, true, true},
		{"2027-01-01", false, true},
		{"2026-07-28x", false, false},
		{"2026-07-2", false, false},
		{"2024-10-07", false, false},
		{"", false, false},
		{"latest", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.v, func(t *testing.T) {
			if got := mcp.SupportedVersion(tt.v); got != tt.supported {
				t.Errorf("SupportedVersion(%q) = %v, want %v", tt.v, got, tt.supported)
			}
			if got := mcp.IsModernVersion(tt.v); got != tt.modern {
				t.Errorf("IsModernVersion(%q) = %v, want %v", tt.v, got, tt.modern)
			}
		})
	}
	for _, v := range mcp.LegacyVersions {
		if mcp.IsModernVersion(v) {
			t.Errorf("legacy version %s reported as modern", v)
		}
	}
	for _, v := range mcp.ModernVersions {
		if !mcp.IsModernVersion(v) {
			t.Errorf("modern version %s not reported as modern", v)
		}
	}
	if mcp.LegacyVersions[0] != mcp.LatestLegacy || mcp.ModernVersions[0] != mcp.LatestModern {
		t.Errorf("version lists do not start with the latest versions")
	}
}

func TestEraString(t *testing.T) {
	for era, want := range map[mcp.Era]string{mcp.EraUnknown: "unknown", mcp.EraLegacy: "legacy", mcp.EraModern: "modern", 99: "unknown"} {
		if got := era.String(); got != want {
			t.Errorf("Era(%d).String() = %q, want %q", era, got, want)
		}
	}
}
