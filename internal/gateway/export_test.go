package gateway

import (
	"slices"

	"github.com/sluicehq/sluice/internal/guard"
)

// AddGuardForTest installs extra in the running chain, in its place in
// [guard.Order], until the next reload. Tests use it to stand in for
// guards that record decisions other guards act on (a policy marking calls
// require-approval).
func (g *Gateway) AddGuardForTest(extra guard.Guard) error {
	st := *g.st.Load()
	st.guards = append(slices.Clone(st.guards), extra)
	chain, err := guard.Chain(guard.HandlerFunc(g.forward), st.guards...)
	if err != nil {
		return err
	}
	st.chain = chain
	g.st.Store(&st)
	return nil
}
