//go:build !unix

package audit

import "time"

// lockWriter does nothing where flock(2) does not exist: run one Sluice
// per data directory there.
func lockWriter(string, time.Duration) (unlock func(), err error) { return func() {}, nil }

const lockWait time.Duration = 0
