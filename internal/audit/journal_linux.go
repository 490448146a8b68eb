package audit

import (
	"os"

	"golang.org/x/sys/unix"
)

// mapFile reserves size bytes of disk for f (so that a write into the
// mapping never meets a full disk, which would be a fault) and maps them,
// shared, readable and writable.
func mapFile(f *os.File, size int) ([]byte, error) {
	fd := int(f.Fd())
	if err := unix.Fallocate(fd, 0, 0, int64(size)); err != nil {
		return nil, mapError("reserving room", err)
	}
	m, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, mapError("mapping", err)
	}
	return m, nil
}

func unmapFile(m []byte) { unix.Munmap(m) }

// syncMapped writes m[from:to] to the disk, from the page that holds from.
func syncMapped(m []byte, from, to int) error {
	from &^= os.Getpagesize() - 1
	if err := unix.Msync(m[from:to], unix.MS_SYNC); err != nil {
		return mapError("sync", err)
	}
	return nil
}
