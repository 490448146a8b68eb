package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/sluicehq/sluice/internal/rawio"
)

// journalSpace is the room a mapped journal starts with and is cut back to
// when emptied after growing: at a few hundred bytes a record, thousands of
// records, more than an ingest interval brings at thousands of calls a
// second.
const journalSpace = 4 << 20

// journal is one of the log's two journal files, where an event is
// written before the caller is answered.
//
// Where the platform allows, the file is mapped into memory, shared, with
// its blocks reserved (fallocate): an append is then a copy into the page
// cache, with no system call, and the kernel keeps the pages when the
// process dies, as it keeps a written page. The reserved room after the
// lines holds zero bytes, which no line contains: the journal's lines end
// at the first zero byte. Elsewhere, or when mapping fails (a file system
// without fallocate), each append is one write.
type journal struct {
	f    *os.File
	w    io.Writer // the plain journal's writes, raw system calls where supported
	m    []byte    // the mapped journal's memory, len(m) bytes reserved
	size int       // bytes of lines
	sync bool
}

// openJournal creates (or empties) the journal at path. Appends reach the
// disk before they return when sync is set.
func openJournal(path string, sync, plain bool) (*journal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	j := &journal{f: f, w: f, sync: sync}
	if !plain {
		if m, err := mapFile(f, journalSpace); err == nil {
			j.m = m
			return j, nil
		}
	}
	if raw := rawio.WrapRegular(f); raw != nil {
		j.w = raw
	}
	return j, nil
}

func (j *journal) name() string { return j.f.Name() }

// append adds b (whole lines) after the journal's lines. On an error
// nothing of b stays behind, so that no partial line precedes a later good
// one.
func (j *journal) append(b []byte) error {
	if j.m == nil {
		n, err := j.w.Write(b)
		if err == nil && j.sync {
			err = j.f.Sync()
		}
		if err != nil {
			if n > 0 {
				j.f.Truncate(int64(j.size))
				j.f.Seek(int64(j.size), io.SeekStart)
			}
			return err
		}
		j.size += n
		return nil
	}
	if len(b) > len(j.m)-j.size {
		if err := j.grow(j.size + len(b)); err != nil {
			return err
		}
	}
	copy(j.m[j.size:], b)
	if j.sync {
		if err := syncMapped(j.m, j.size, j.size+len(b)); err != nil {
			clear(j.m[j.size : j.size+len(b)])
			return err
		}
	}
	j.size += len(b)
	return nil
}

// grow reserves room for need bytes of lines (at least twice the room
// there is) and maps it in place of the old mapping.
func (j *journal) grow(need int) error {
	room := max(2*len(j.m), (need+journalSpace-1)/journalSpace*journalSpace)
	m, err := mapFile(j.f, room)
	if err != nil {
		return err
	}
	unmapFile(j.m)
	j.m = m
	return nil
}

// reset empties the journal. A mapped journal's lines are zeroed, and its
// room cut back to journalSpace when it grew past four times that.
func (j *journal) reset() error {
	if j.m == nil {
		if err := j.f.Truncate(0); err != nil {
			return err
		}
		_, err := j.f.Seek(0, io.SeekStart)
		j.size = 0
		return err
	}
	if len(j.m) > 4*journalSpace {
		unmapFile(j.m)
		j.m = nil
		j.size = 0
		if err := j.f.Truncate(0); err != nil {
			return err
		}
		m, err := mapFile(j.f, journalSpace)
		if err != nil {
			return err
		}
		j.m = m
		return nil
	}
	clear(j.m[:j.size])
	j.size = 0
	return nil
}

func (j *journal) close() error {
	if j.m != nil {
		unmapFile(j.m)
		j.m = nil
	}
	return j.f.Close()
}

// journalLines reads a journal file up to its first zero byte: the room a
// mapped journal had reserved after its lines.
type journalLines struct {
	r    io.Reader
	done bool
}

func (jl *journalLines) Read(p []byte) (int, error) {
	if jl.done {
		return 0, io.EOF
	}
	n, err := jl.r.Read(p)
	if i := bytes.IndexByte(p[:n], 0); i >= 0 {
		jl.done = true
		return i, nil
	}
	return n, err
}

var errNoMapping = errors.New("journal mapping not supported here")

func mapError(op string, err error) error { return fmt.Errorf("journal %s: %w", op, err) }
