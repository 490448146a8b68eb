package audit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// LogOptions configure [OpenLog].
type LogOptions struct {
	// Primary is where the chain is continued from and kept: the store
	// that queries and verification read.
	Primary Store
	// Journal is the path prefix of the two journal files in front of the
	// primary store (default: the SQLite database's path + ".pending").
	Journal string
	// Sync makes every journal write reach the disk (fsync, or msync for
	// a mapped journal) before the event counts as written, so that it
	// survives a power loss too, not only a crash of Sluice.
	Sync bool
	// Others receive every batch too; their failures are logged, not
	// returned.
	Others []Sink
	Signer *Signer
	// CheckpointEvery signs the head after this many records (default
	// 1000); CheckpointInterval signs it at least this often while records
	// arrive (default 1s), and Close signs it last.
	CheckpointEvery    int
	CheckpointInterval time.Duration
	// IngestInterval is how often journaled records are moved into the
	// primary store and the other sinks (default 200ms); IngestBatch
	// moves them sooner once this many wait (default 2048).
	IngestInterval time.Duration
	IngestBatch    int
	// Backlog bounds the records journaled but not yet in the primary
	// store (default 100,000), so that memory stays bounded: past it,
	// appends wait for the store, up to BacklogWait (default 5s), then
	// fail.
	Backlog     int
	BacklogWait time.Duration
	// Retention purges records older than this (zero keeps everything),
	// checked every RetentionInterval (default 1h).
	Retention         time.Duration
	RetentionInterval time.Duration
	Logger            *slog.Logger

	plainJournal bool // one write per append, never a mapping (tests)
}

// Log keeps events as one hash chain. Appending an event chains it and
// writes it to a journal file, on the caller's goroutine, as a copy into
// the file's memory mapping (or one write where files are not mapped);
// once that returns, the event survives a crash of the process. Every
// IngestInterval, one goroutine moves the journaled records into the
// primary store (one transaction) and the other sinks, and empties the
// journal. Two journal files alternate, so that appends go on into one
// while the other is moved. After a crash, [OpenLog] moves what the
// journals hold into the store before anything else.
//
// It is safe for concurrent use.
type Log struct {
	opts LogOptions
	log  *slog.Logger

	mu       sync.Mutex // guards the chain head, the journal and backlog
	seq      uint64
	head     [32]byte
	written  int64 // the head's write time
	signed   uint64
	lastSign time.Time
	journal  [2]*journal
	cur      int // the journal appends go to
	line     []byte
	backlog  []Record
	spare    []Record // an emptied backlog, kept for its room
	cps      []Checkpoint
	closed   bool
	moving   int           // records an ingest took and has not stored yet
	room     chan struct{} // closed when an ingest has stored records

	kick     chan struct{}
	closeC   chan struct{}
	doneC    chan struct{}
	once     sync.Once
	closeErr error
	ingestMu sync.Mutex // one ingest at a time
	failing  map[string]bool

	journalOK atomic.Bool
	storeOK   atomic.Bool
}

// OpenLog continues the chain held by opts.Primary, first moving into it
// what the journals hold from before a crash.
func OpenLog(ctx context.Context, opts LogOptions) (*Log, error) {
	if opts.Primary == nil || opts.Signer == nil {
		return nil, errors.New("audit log needs a primary store and a signer")
	}
	if opts.Journal == "" {
		st, ok := opts.Primary.(*SQLite)
		if !ok {
			return nil, errors.New("audit log needs a journal path")
		}
		opts.Journal = st.path + ".pending"
	}
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = 1000
	}
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = time.Second
	}
	if opts.IngestInterval <= 0 {
		opts.IngestInterval = 200 * time.Millisecond
	}
	if opts.IngestBatch <= 0 {
		opts.IngestBatch = 2048
	}
	if opts.Backlog <= 0 {
		opts.Backlog = 100_000
	}
	if opts.BacklogWait <= 0 {
		opts.BacklogWait = 5 * time.Second
	}
	if opts.RetentionInterval <= 0 {
		opts.RetentionInterval = time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{
		opts:     opts,
		log:      opts.Logger,
		kick:     make(chan struct{}, 1),
		closeC:   make(chan struct{}),
		doneC:    make(chan struct{}),
		failing:  map[string]bool{},
		lastSign: time.Now(),
		room:     make(chan struct{}),
	}
	if err := l.recover(ctx); err != nil {
		return nil, err
	}
	seq, head, signed, err := opts.Primary.Head(ctx)
	if err != nil {
		l.closeJournals()
		return nil, fmt.Errorf("audit: reading the head of %s: %w", opts.Primary.Name(), err)
	}
	if err := checkTail(ctx, opts.Primary, opts.Signer, seq, head); err != nil {
		l.closeJournals()
		return nil, fmt.Errorf("audit: %s does not verify after its last checkpoint, and new checkpoints would sign it: %w; run sluice audit verify, and move the database aside to start a new log", opts.Primary.Name(), err)
	}
	l.seq, l.head, l.signed = seq, head, signed
	if seq > 0 {
		err := opts.Primary.Query(ctx, Filter{AfterSeq: seq - 1}, func(r Record) error {
			l.written = r.Time
			return nil
		})
		if err != nil {
			l.closeJournals()
			return nil, fmt.Errorf("audit: reading the head of %s: %w", opts.Primary.Name(), err)
		}
	}
	l.journalOK.Store(true)
	l.storeOK.Store(true)
	go l.run()
	return l, nil
}

func (l *Log) journalPath(i int) string { return fmt.Sprintf("%s.%d", l.opts.Journal, i) }

// recover moves the records and checkpoints left in the journals (a crash
// after they were journaled, before they reached the store) into the
// primary store, then opens both journals empty.
func (l *Log) recover(ctx context.Context) error {
	seq, _, _, err := l.opts.Primary.Head(ctx)
	if err != nil {
		return fmt.Errorf("audit: reading the head of %s: %w", l.opts.Primary.Name(), err)
	}
	var (
		recs []Record
		cps  []Checkpoint
	)
	for i := range l.journal {
		f, err := os.Open(l.journalPath(i))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("audit journal: %w", err)
		}
		err = readJSONL(&journalLines{r: f}, 256<<10, lineAny, func(r *Record, c *Checkpoint) error {
			switch {
			case r != nil && r.Seq > seq:
				recs = append(recs, *r)
			case c != nil && c.Seq > seq:
				cps = append(cps, *c)
			}
			return nil
		})
		f.Close()
		// A line cut short by the crash was never acknowledged: the
		// write that carried it had not returned.
		if err != nil && !errors.Is(err, ErrTorn) {
			return fmt.Errorf("audit journal %s: %w", l.journalPath(i), err)
		}
	}
	slices.SortFunc(recs, func(a, b Record) int { return cmp.Compare(a.Seq, b.Seq) })
	if len(recs) > 0 || len(cps) > 0 {
		// The chain is checked as it is moved: a journal changed while
		// Sluice was down must not enter the store unnoticed.
		next, prev := seq+1, [32]byte{}
		if len(recs) > 0 {
			_, prev, _, _ = l.opts.Primary.Head(ctx)
		}
		for _, r := range recs {
			if r.Seq != next || r.Prev != prev || r.ComputeHash() != r.Hash {
				return fmt.Errorf("audit journal: record %d does not continue the chain of %s; move the journal files %s.* aside after looking at them", r.Seq, l.opts.Primary.Name(), l.opts.Journal)
			}
			next, prev = r.Seq+1, r.Hash
		}
		if err := l.opts.Primary.Write(ctx, recs, cps); err != nil {
			return fmt.Errorf("audit: moving the journal into %s: %w", l.opts.Primary.Name(), err)
		}
		for _, s := range l.opts.Others {
			if err := s.Write(ctx, recs, cps); err != nil {
				l.log.Error("audit sink missed records recovered from the journal", "sink", s.Name(), "err", err)
			}
		}
		l.log.Warn("audit records recovered from the journal after a crash", "records", len(recs), "checkpoints", len(cps))
	}
	for i := range l.journal {
		j, err := openJournal(l.journalPath(i), l.opts.Sync, l.opts.plainJournal)
		if err != nil {
			l.closeJournals()
			return fmt.Errorf("audit journal: %w", err)
		}
		l.journal[i] = j
	}
	return nil
}

func (l *Log) closeJournals() {
	for i, j := range l.journal {
		if j != nil {
			j.close()
			l.journal[i] = nil
		}
	}
}

// Store is the primary store.
func (l *Log) Store() Store { return l.opts.Primary }

// Healthy reports whether events can be recorded: the journal takes
// writes and the primary store took the last records moved into it.
func (l *Log) Healthy() bool { return l.journalOK.Load() && l.storeOK.Load() }

// Append chains body (an [Event.Body]) and journals it. When it returns
// nil, the event survives a crash of the process; an error means the event
// is not recorded. When the backlog is full, Append waits for room (up to
// BacklogWait) only if wait is set, and fails at once otherwise.
func (l *Log) Append(body []byte, wait bool) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	if len(l.backlog)+l.moving >= l.opts.Backlog {
		if err := l.waitRoom(wait); err != nil {
			l.mu.Unlock()
			return err
		}
	}
	// Write times follow the chain even when the clock steps back, so
	// that a time range is a range of sequence numbers.
	now := max(nowNano(), l.written)
	r := Record{Seq: l.seq + 1, Time: now, Prev: l.head, Body: body}
	r.Hash = r.ComputeHash()
	l.line = appendRecordLine(l.line[:0], &r)
	var cp *Checkpoint
	if r.Seq-l.signed >= uint64(l.opts.CheckpointEvery) || time.Since(l.lastSign) >= l.opts.CheckpointInterval {
		cp = &Checkpoint{Kind: KindCheckpoint, Seq: r.Seq, Hash: r.Hash, Time: now}
		l.opts.Signer.Sign(cp)
		l.line = appendCheckpointLine(l.line, cp)
	}
	if err := l.journalWrite(l.line); err != nil {
		l.mu.Unlock()
		return err
	}
	l.seq, l.head, l.written = r.Seq, r.Hash, r.Time
	l.backlog = append(l.backlog, r)
	if cp != nil {
		l.signed, l.lastSign = cp.Seq, time.Now()
		l.cps = append(l.cps, *cp)
	}
	n := len(l.backlog)
	if cap(l.line) > 64<<10 {
		l.line = nil
	}
	l.mu.Unlock()
	if n == l.opts.IngestBatch {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// waitRoom waits, l.mu held, until the backlog has room or BacklogWait
// has passed; without wait, it only asks for an ingest and fails.
func (l *Log) waitRoom(wait bool) error {
	if !wait {
		select {
		case l.kick <- struct{}{}:
		default:
		}
		return fmt.Errorf("audit: %d records wait for %s", len(l.backlog)+l.moving, l.opts.Primary.Name())
	}
	timer := time.NewTimer(l.opts.BacklogWait)
	defer timer.Stop()
	for len(l.backlog)+l.moving >= l.opts.Backlog {
		room := l.room
		l.mu.Unlock()
		select {
		case l.kick <- struct{}{}:
		default:
		}
		select {
		case <-room:
		case <-timer.C:
			l.mu.Lock()
			return fmt.Errorf("audit: %d records wait for %s", len(l.backlog)+l.moving, l.opts.Primary.Name())
		}
		l.mu.Lock()
		if l.closed {
			return ErrClosed
		}
	}
	return nil
}

// journalWrite appends b to the current journal; on a failure, nothing of
// b stays there. l.mu is held.
func (l *Log) journalWrite(b []byte) error {
	j := l.journal[l.cur]
	if err := j.append(b); err != nil {
		if l.journalOK.Swap(false) {
			l.log.Error("audit journal failing", "file", j.name(), "err", err)
		}
		return fmt.Errorf("audit: writing the journal: %w", err)
	}
	if !l.journalOK.Load() {
		l.journalOK.Store(true)
		l.log.Info("audit journal writing again", "file", j.name())
	}
	return nil
}

// sign journals a checkpoint over the head when records are unsigned and
// the interval has passed (or force is set). l.mu is held.
func (l *Log) sign(force bool) {
	if l.signed >= l.seq || (!force && time.Since(l.lastSign) < l.opts.CheckpointInterval) {
		return
	}
	cp := Checkpoint{Kind: KindCheckpoint, Seq: l.seq, Hash: l.head, Time: nowNano()}
	l.opts.Signer.Sign(&cp)
	if err := l.journalWrite(appendCheckpointLine(nil, &cp)); err != nil {
		return
	}
	l.signed, l.lastSign = cp.Seq, time.Now()
	l.cps = append(l.cps, cp)
}

// Close moves what is journaled into the sinks, signs the head and closes
// the sinks.
func (l *Log) Close() error {
	l.once.Do(func() {
		close(l.closeC)
		<-l.doneC
		var errs []error
		for _, s := range l.opts.Others {
			errs = append(errs, s.Close())
		}
		errs = append(errs, l.opts.Primary.Close())
		l.closeErr = errors.Join(errs...)
	})
	<-l.doneC
	return l.closeErr
}

func (l *Log) run() {
	defer close(l.doneC)
	tick := time.NewTicker(l.opts.IngestInterval)
	defer tick.Stop()
	retain := time.NewTicker(l.opts.RetentionInterval)
	defer retain.Stop()
	if l.opts.Retention > 0 {
		l.purge()
	}
	for {
		select {
		case <-tick.C:
		case <-l.kick:
		case <-retain.C:
			if l.opts.Retention > 0 {
				l.ingest(false)
				l.purge()
			}
			continue
		case <-l.closeC:
			l.mu.Lock()
			l.closed = true
			l.sign(true)
			l.mu.Unlock()
			if !l.ingest(false) {
				l.log.Error("audit records remain in the journal; they are moved into the store at the next start", "journal", l.opts.Journal)
			}
			l.closeJournals()
			return
		}
		l.ingest(true)
	}
}

// Flush moves what is journaled into the sinks now, and reports whether
// the primary store took it.
func (l *Log) Flush() bool { return l.ingest(false) }

// ingest moves the journaled records into the primary store and the other
// sinks, then empties the journal they were in. It reports whether
// everything journaled is in the store.
func (l *Log) ingest(timed bool) bool {
	l.ingestMu.Lock()
	defer l.ingestMu.Unlock()
	l.mu.Lock()
	if l.journal[l.cur] == nil {
		l.mu.Unlock()
		return false // closed
	}
	if timed {
		l.sign(false)
	}
	recs, cps := l.backlog, l.cps
	if len(recs) == 0 && len(cps) == 0 {
		l.mu.Unlock()
		return true
	}
	// Appends go on into the other journal while this one's records move.
	// The other is empty unless the store failed the last time; lines
	// left there are of records the store now has or is given now, which
	// recovery would pass over.
	full := l.journal[l.cur]
	l.cur = 1 - l.cur
	l.backlog, l.cps, l.spare = l.spare, nil, nil
	l.moving = len(recs)
	l.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := l.opts.Primary.Write(ctx, recs, cps)
	if err != nil {
		if l.storeOK.Swap(false) {
			l.log.Error("audit store failing; records wait in the journal", "store", l.opts.Primary.Name(), "err", err)
		}
		// Back in front of whatever came since; the journal keeps them.
		l.mu.Lock()
		l.backlog = append(recs, l.backlog...)
		l.cps = append(cps, l.cps...)
		l.moving = 0
		l.mu.Unlock()
		return false
	}
	if !l.storeOK.Swap(true) {
		l.log.Info("audit store writing again", "store", l.opts.Primary.Name())
	}
	// Appends go to the other journal until the next ingest, which this
	// one's lock holds back: emptying this one is safe.
	if err := full.reset(); err != nil {
		l.log.Error("audit journal not emptied; its records are in the store, and would be passed over after a crash", "file", full.name(), "err", err)
	}
	l.mu.Lock()
	l.moving = 0
	close(l.room)
	l.room = make(chan struct{})
	l.mu.Unlock()
	for _, s := range l.opts.Others {
		serr := s.Write(ctx, recs, cps)
		switch {
		case serr != nil && !l.failing[s.Name()]:
			l.failing[s.Name()] = true
			l.log.Error("audit sink failing; its copy of the chain will have a gap", "sink", s.Name(), "err", serr)
		case serr == nil && l.failing[s.Name()]:
			delete(l.failing, s.Name())
			l.log.Info("audit sink writing again", "sink", s.Name())
		}
	}
	// The next backlog takes this one's room; the bodies are the sinks'.
	if cap(recs) <= 4*l.opts.IngestBatch {
		clear(recs)
		l.mu.Lock()
		l.spare = recs[:0]
		l.mu.Unlock()
	}
	return true
}

// purge deletes records older than the retention period, up to the last
// checkpoint before the cutoff, and signs where it stopped.
func (l *Log) purge() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cp, ok, err := l.opts.Primary.RetentionPoint(ctx, time.Now().Add(-l.opts.Retention))
	if err != nil {
		l.log.Error("audit retention", "err", err)
		return
	}
	if !ok {
		return
	}
	cp.Kind, cp.Time = KindRetention, nowNano()
	l.opts.Signer.Sign(&cp)
	if err := l.opts.Primary.Purge(ctx, cp); err != nil {
		l.log.Error("audit retention", "err", err)
		return
	}
	l.log.Info("audit retention purged old records", "through_seq", cp.Seq)
}

// checkTail checks, before a log continues, what no signature covers yet:
// the last checkpoint's signature, and that the records after it (at most
// one checkpoint interval) link to it and to each other and match their
// hashes. Whatever changed them while Sluice was stopped would otherwise be
// signed by the next checkpoint.
func checkTail(ctx context.Context, st Store, signer *Signer, seq uint64, head [32]byte) error {
	cp, ok, err := st.LastCheckpoint(ctx)
	if err != nil {
		return err
	}
	var (
		expect = uint64(1)
		prev   [32]byte
	)
	if ok {
		if !cp.VerifySig(signer.Public()) {
			return fmt.Errorf("the %s checkpoint at seq %d is not signed by this signing key (%s)", cp.Kind, cp.Seq, KeyID(signer.Public()))
		}
		expect, prev = cp.Seq+1, cp.Hash
	}
	if seq < expect {
		if ok && seq+1 < expect {
			return fmt.Errorf("records %d to %d, which a checkpoint signed, are missing", seq+1, cp.Seq)
		}
		if ok && cp.Kind == KindCheckpoint && head != cp.Hash {
			return fmt.Errorf("record %d does not match the checkpoint that signed it", cp.Seq)
		}
		return nil
	}
	from := expect - 1
	if ok && cp.Kind == KindCheckpoint {
		// The checkpoint's own record must still be the one it signed.
		from = cp.Seq - 1
	}
	signedSeen := !ok || cp.Kind != KindCheckpoint
	err = st.Query(ctx, Filter{AfterSeq: from}, func(r Record) error {
		if !signedSeen {
			if r.Seq != cp.Seq || r.Hash != cp.Hash || r.ComputeHash() != r.Hash {
				return fmt.Errorf("record %d does not match the checkpoint that signed it", cp.Seq)
			}
			signedSeen = true
			return nil
		}
		switch {
		case r.Seq != expect:
			return fmt.Errorf("record %d is missing", expect)
		case r.Prev != prev:
			return fmt.Errorf("record %d does not link to the record before it", r.Seq)
		case r.ComputeHash() != r.Hash:
			return fmt.Errorf("record %d (event %s) was changed", r.Seq, eventID(r.Body))
		}
		expect, prev = r.Seq+1, r.Hash
		return nil
	})
	if err == nil && !signedSeen {
		err = fmt.Errorf("record %d, which a checkpoint signed, is missing", cp.Seq)
	}
	return err
}
