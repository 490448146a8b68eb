package mcp

import "testing"

func TestRecoverID(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"number first", `{"jsonrpc":"2.0","id":42,"result":{"content":[{"text":"xxxx`, `42`},
		{"string id", `{"jsonrpc":"2.0","id":"a\"b","result":`, `"a\"b"`},
		{"after nested", `{"result":{"a":[1,{"b":"}"}]},"id":7,"jsonrpc":"2.0"}`, `7`},
		{"whitespace", "{ \"jsonrpc\" : \"2.0\" ,\n \"id\" : 3 , \"result\": {", `3`},
		{"id cut off", `{"jsonrpc":"2.0","id":12`, ``},
		{"id after truncation", `{"jsonrpc":"2.0","result":{"text":"xxx`, ``},
		{"null id", `{"id":null,"error":{}}`, ``},
		{"object id", `{"id":{"x":1},"result":{}}`, ``},
		{"not an object", `[1,2,3]`, ``},
		{"nested id is not the id", `{"result":{"id":9`, ``},
		{"empty", ``, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(RecoverID([]byte(tt.raw))); got != tt.want {
				t.Errorf("RecoverID(%q) = %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
}
