//go:build !linux

package rawio

import "os"

const supported = false

func read(uintptr, []byte) (int, error)  { panic("rawio: not supported") }
func write(uintptr, []byte) (int, error) { panic("rawio: not supported") }

func nonblocking(*os.File) (bool, error) { return false, nil }
