package upstream

import (
	"fmt"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestDial(t *testing.T) {
	s := newSDKServer()
	httpServer := serveSDK(t, s, &sdk.StreamableHTTPOptions{})
	sseServer := serveSSE(t, s)
	tests := []struct {
		name     string
		spec     Spec
		wantType string
		wantErr  bool
	}{
		{name: "stdio", spec: Spec{Transport: TransportStdio, Stdio: helperConfig(t, modeServer)}, wantType: "*upstream.stdioConn"},
		{name: "streamable http", spec: Spec{Transport: TransportStreamableHTTP, URL: httpServer.URL, Client: testClient(t)}, wantType: "*upstream.HTTPConn"},
		{name: "sse", spec: Spec{Transport: TransportSSE, URL: sseServer.URL, Client: testClient(t)}, wantType: "*upstream.sseConn"},
		{name: "unknown transport", spec: Spec{Transport: "websocket", URL: httpServer.URL}, wantErr: true},
		{name: "relative url", spec: Spec{Transport: TransportStreamableHTTP, URL: "/mcp"}, wantErr: true},
		{name: "not http", spec: Spec{Transport: TransportSSE, URL: "file:///etc/passwd"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Dial(testCtx(t), tt.spec, Options{})
			if tt.wantErr {
				if err == nil || c != nil {
					t.Fatalf("Dial = %v, %v; want a nil conn and an error", c, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := fmt.Sprintf("%T", c); got != tt.wantType {
				t.Errorf("Dial returned %s, want %s", got, tt.wantType)
			}
			initialize(t, c)
			if got := toolText(t, c, `1`, "echo", `{"text":"via `+tt.name+`"}`); got != "via "+tt.name {
				t.Errorf("echo = %q", got)
			}
		})
	}
}
