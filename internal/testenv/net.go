package testenv

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. Start the server
// on it right away; [WaitPort] tells when it listens.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := PickPort()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return p
}

// PickPort is [FreePort] for programs.
func PickPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// WaitPort waits until something accepts TCP connections on 127.0.0.1:port, and fails
// the test when nothing does within timeout.
func WaitPort(t testing.TB, port int, timeout time.Duration) {
	t.Helper()
	if err := AwaitPort(port, timeout); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// AwaitPort is [WaitPort] for programs.
func AwaitPort(port int, timeout time.Duration) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 250*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %v: %w", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
