package authn

import (
	"context"

	"github.com/sluicehq/sluice/internal/guard"
)

// Guard is the "authn" guard. The transports authenticate (HTTP requests
// before they become calls, stdio by configuration); the guard makes sure
// none forgot: a call without a principal is refused, so that a path that
// skipped authentication fails closed instead of running anonymously.
type Guard struct{}

var _ guard.Guard = Guard{}

// Name is "authn".
func (Guard) Name() string { return "authn" }

// Wrap refuses calls that carry no principal.
func (Guard) Wrap(next guard.Handler) guard.Handler {
	return guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*guard.Result, error) {
		if c.Principal == nil || c.Principal.Subject == "" {
			return nil, c.Decide(guard.Decision{
				Guard:   "authn",
				Reason:  ReasonRequired,
				Effect:  guard.Deny,
				Mode:    guard.Enforce,
				Message: "authentication required",
			})
		}
		return next.Handle(ctx, c)
	})
}
