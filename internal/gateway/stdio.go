package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"sync"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/authn"
	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
)

// ServeStdio serves one client speaking newline-delimited JSON-RPC on r
// and w (MCP's stdio transport), until r ends or ctx is done. Requests are
// handled concurrently; writes are serialised.
func (g *Gateway) ServeStdio(ctx context.Context, r io.Reader, w io.Writer, profile string) error {
	if !g.Profile(profile) {
		return errors.New("unknown profile " + profile)
	}
	lim := g.Limits()
	max := lim.MaxBytes
	if max <= 0 {
		max = mcp.DefaultMaxBytes
	}
	out := &stdioWriter{w: w}
	ctx = withTransport(ctx, &guard.Transport{Kind: "stdio"})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		s  *Session
		wg sync.WaitGroup
	)
	defer func() {
		cancel()
		wg.Wait()
		if s != nil {
			s.Close()
		}
	}()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := readLine(br, max)
		if len(bytes.TrimSpace(line)) > 0 {
			g.stdioMessage(ctx, &s, profile, line, lim, out, &wg)
		}
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				_ = out.Send(mcp.NewErrorResponse(nil, mcp.NewError(mcp.CodeMessageTooLarge, "message too large")))
				continue
			}
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

func (g *Gateway) stdioMessage(ctx context.Context, sp **Session, profile string, line []byte, lim mcp.Limits, out *stdioWriter, wg *sync.WaitGroup) {
	m, err := mcp.Decode(line, lim)
	if err != nil {
		_ = out.Send(decodeFailure(err))
		return
	}
	if *sp == nil {
		era := mcp.EraLegacy
		if m.Method == mcp.MethodDiscover {
			era = mcp.EraModern
		} else if v, ok, _ := mcp.LookupPath(m.Params, "_meta", mcp.MetaProtocolVersion); ok {
			if vs, _ := unquote(v); mcp.IsModernVersion(vs) && m.Method != mcp.MethodInitialize {
				era = mcp.EraModern
			}
		}
		// Over stdio nobody presents credentials: the caller is whoever
		// launched Sluice, as configured (auth.stdio) or as the OS says.
		s := g.NewSession(SessionOptions{Era: era, Profile: profile, Principal: authn.StdioPrincipal(g.st.Load().cfg.Auth)})
		*sp = s
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case msg := <-s.Out():
					_ = out.Send(msg)
				case <-s.Done():
					return
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	s := *sp
	switch m.Kind() {
	case mcp.KindNotification:
		s.HandleNotification(ctx, m)
	case mcp.KindResponse:
		s.HandleResponse(m)
	case mcp.KindRequest:
		if s.era == mcp.EraModern && s.caps == nil {
			// A modern client declares itself with every request; over one
			// stdio connection Sluice takes the first declaration, before any
			// request runs, so that concurrent requests never race on it.
			if caps, ok, _ := mcp.LookupPath(m.Params, "_meta", mcp.MetaClientCapabilities); ok && caps.Kind() == '{' {
				s.caps = caps
			} else {
				s.caps = jsontext.Value(`{}`)
			}
			s.client.Capabilities = s.caps
			s.clientInfo, _, _ = mcp.LookupPath(m.Params, "_meta", mcp.MetaClientInfo)
			s.client.Name, _, _ = mcp.LookupString(s.clientInfo, "name")
			s.client.Version, _, _ = mcp.LookupString(s.clientInfo, "version")
			if v, ok, _ := mcp.LookupPath(m.Params, "_meta", mcp.MetaProtocolVersion); ok {
				s.version, _ = unquote(v)
			}
		}
		if m.Method == mcp.MethodInitialize {
			// The handshake must finish before anything else is read.
			_ = out.Send(s.HandleRequest(ctx, m, out))
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = out.Send(s.HandleRequest(ctx, m, out))
		}()
	}
}

var errLineTooLong = errors.New("line too long")

// readLine reads one newline-terminated line of at most max bytes. A longer
// line is consumed and reported as errLineTooLong.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > max+1 {
			// Drain the rest of the line.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil && err != io.EOF {
				return nil, err
			}
			return nil, errLineTooLong
		}
		buf = append(buf, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimRight(buf, "\r\n"), err
	}
}

// stdioWriter writes one message per line.
type stdioWriter struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

func (sw *stdioWriter) Send(m *mcp.Message) error {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	b := m.Append(sw.buf[:0])
	b = append(b, '\n')
	sw.buf = b
	_, err := sw.w.Write(b)
	return err
}
