//go:build !linux

package audit

import "os"

// Mapped journals need fallocate(2), which only Linux has: elsewhere each
// append is a write.
func mapFile(*os.File, int) ([]byte, error) { return nil, errNoMapping }

func unmapFile([]byte) {}

func syncMapped([]byte, int, int) error { return errNoMapping }
