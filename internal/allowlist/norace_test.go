//go:build !race

package allowlist

const raceEnabled = false
