//go:build race

package testenv

// raceEnabled tells whether this binary was built with -race; [Sluice] then builds the
// binary it returns with -race too, so that end-to-end tests find races in the gateway.
const raceEnabled = true
