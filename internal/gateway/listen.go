package gateway

import (
	"context"
	"slices"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/mcp"
)

// listenFilter is what a modern client opted in to on subscriptions/listen.
type listenFilter struct {
	id                               jsontext.Value // the listen request's id
	tools, prompts, resourcesChanged bool
	uris                             []string
}

func (lf *listenFilter) listChanged(method string) bool {
	switch method {
	case mcp.NotifToolsListChanged:
		return lf.tools
	case mcp.NotifPromptsListChanged:
		return lf.prompts
	case mcp.NotifResourcesListChanged:
		return lf.resourcesChanged
	}
	return false
}

func (lf *listenFilter) resource(uri string) bool { return slices.Contains(lf.uris, uri) }

// tag marks a notification with the listen request it belongs to.
func (lf *listenFilter) tag(m *mcp.Message) *mcp.Message {
	params := m.Params
	if params == nil {
		params = jsontext.Value(`{}`)
	}
	meta, _, _ := mcp.Lookup(params, "_meta")
	if meta.Kind() != '{' {
		meta = jsontext.Value(`{}`)
	}
	meta, _ = mcp.SetMember(meta, mcp.MetaSubscriptionID, lf.id)
	params, _ = mcp.SetMember(params, "_meta", meta)
	return mcp.NewNotification(m.Method, params)
}

func (lf *listenFilter) encode() jsontext.Value {
	out := []byte(`{`)
	sep := ""
	flag := func(name string, on bool) {
		if on {
			out = append(out, sep...)
			out = append(out, `"`+name+`":true`...)
			sep = ","
		}
	}
	flag("toolsListChanged", lf.tools)
	flag("promptsListChanged", lf.prompts)
	flag("resourcesListChanged", lf.resourcesChanged)
	if len(lf.uris) > 0 {
		out = append(out, sep...)
		out = append(out, `"resourceSubscriptions":[`...)
		for i, u := range lf.uris {
			if i > 0 {
				out = append(out, ',')
			}
			out, _ = jsontext.AppendQuote(out, u)
		}
		out = append(out, ']')
	}
	return append(out, '}')
}

// listenSubscriptions serves a modern client's subscriptions/listen: it
// acknowledges what Sluice can deliver, subscribes upstream on the
// client's behalf, and streams matching notifications until the client
// closes the stream.
func (s *Session) listenSubscriptions(ctx context.Context, st *state, p *profile, id jsontext.Value, params jsontext.Value, stream Stream) (jsontext.Value, error) {
	notif, ok, err := mcp.Lookup(params, "notifications")
	if err != nil || !ok || notif.Kind() != '{' {
		return nil, invalidParams(`"notifications" is required`)
	}
	if stream == nil {
		return nil, mcp.NewError(mcp.CodeInvalidRequest, "subscriptions/listen needs a streaming transport")
	}
	// Sluice serves the request itself: the guards judge it for each
	// server it listens to.
	for _, server := range p.servers {
		if err := s.check(ctx, st, p, server, mcp.MethodSubscriptionsListen, "", params); err != nil {
			return nil, err
		}
	}
	want := &listenFilter{id: id}
	want.tools = boolMember(notif, "toolsListChanged")
	want.prompts = boolMember(notif, "promptsListChanged")
	want.resourcesChanged = boolMember(notif, "resourcesListChanged")
	if arr, ok, _ := mcp.Lookup(notif, "resourceSubscriptions"); ok && arr.Kind() == '[' {
		for _, v := range splitArray(arr) {
			if u, err := unquote(v); err == nil {
				want.uris = append(want.uris, u)
			}
		}
	}
	// Agree only to what some upstream of the profile can deliver.
	caps, _, _ := s.g.describe(ctx, p)
	agreed := &listenFilter{id: id}
	agreed.tools = want.tools && capFlag(caps, "tools", "listChanged")
	agreed.prompts = want.prompts && capFlag(caps, "prompts", "listChanged")
	agreed.resourcesChanged = want.resourcesChanged && capFlag(caps, "resources", "listChanged")
	if capFlag(caps, "resources", "subscribe") {
		// Only resources the guards let the caller subscribe to.
		for _, uri := range want.uris {
			servers := s.g.resourceServers(p, uri)
			if len(servers) == 0 {
				continue
			}
			if err := s.allowSubscription(ctx, st, p, servers[0], uri); err != nil {
				_ = s.g.rpcError(err, mcp.MethodResourcesSubscribe) // logs why
				continue
			}
			agreed.uris = append(agreed.uris, uri)
		}
	}
	s.mu.Lock()
	s.listen = agreed
	s.mu.Unlock()

	// Attach to the principal's upstream sessions and subscribe there.
	listenCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, server := range p.servers {
		up := s.g.upstream(server)
		if up == nil {
			continue
		}
		us, err := up.session(ctx, s.upstreamKey(), s.clientInit())
		if err != nil {
			s.g.log.Warn("listen: upstream unavailable", "server", server, "err", err)
			continue
		}
		us.attach(s)
		defer us.detach(s)
		_, info := us.current()
		if info == nil {
			continue
		}
		if info.era == mcp.EraModern {
			lp := []byte(`{"notifications":`)
			lp = append(lp, agreed.encode()...)
			lp = append(lp, '}')
			go func() {
				_, _ = us.call(listenCtx, s, mcp.MethodSubscriptionsListen, lp, func(m *mcp.Message) {
					if m.IsNotification() && m.Method != mcp.NotifSubscriptionsAcknowledged {
						s.upstreamNotification(server, m)
					}
				})
			}()
			continue
		}
		for _, uri := range agreed.uris {
			if !s.g.ownsResource(server, uri) && len(p.servers) > 1 {
				continue
			}
			sp, _ := jsontext.AppendQuote([]byte(`{"uri":`), uri)
			sp = append(sp, '}')
			if resp, err := us.call(ctx, s, mcp.MethodResourcesSubscribe, sp, nil); err == nil && resp.Error == nil {
				defer func() {
					uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5e9)
					defer cancel()
					_, _ = us.call(uctx, s, mcp.MethodResourcesUnsubscribe, sp, nil)
				}()
			}
		}
	}
	ack := []byte(`{"notifications":`)
	ack = append(ack, agreed.encode()...)
	ack = append(ack, `,"_meta":{"`+mcp.MetaSubscriptionID+`":`...)
	ack = append(ack, id...)
	ack = append(ack, `}}`...)
	if err := stream.Send(mcp.NewNotification(mcp.NotifSubscriptionsAcknowledged, ack)); err != nil {
		return nil, err
	}
	if !agreed.tools && !agreed.prompts && !agreed.resourcesChanged && len(agreed.uris) == 0 {
		return s.listenResult(id), nil
	}
	for {
		select {
		case m := <-s.out:
			if err := stream.Send(m); err != nil {
				return nil, err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.g.closing():
			return s.listenResult(id), nil
		}
	}
}

func (s *Session) listenResult(id jsontext.Value) jsontext.Value {
	out := []byte(`{"resultType":"complete","_meta":{"` + mcp.MetaSubscriptionID + `":`)
	out = append(out, id...)
	return append(out, `}}`...)
}

func boolMember(obj jsontext.Value, key string) bool {
	v, ok, _ := mcp.Lookup(obj, key)
	return ok && string(v) == "true"
}

func capFlag(caps jsontext.Value, feature, flag string) bool {
	v, ok, _ := mcp.LookupPath(caps, feature, flag)
	return ok && string(v) == "true"
}
