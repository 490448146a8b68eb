package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// LogOptions configure [OpenLog].
type LogOptions struct {
	// Primary is where the chain is continued from and what must succeed
	// for an event to count as written.
	Primary Store
	// Others receive every batch too; their failures are logged, not
	// returned.
	Others []Sink
	Signer *Signer
	// CheckpointEvery signs the head after this many records (default
	// 1000); CheckpointInterval signs it at least this often while records
	// arrive (default 1s), and Close signs it last.
	CheckpointEvery    int
	CheckpointInterval time.Duration
	// Retention purges records older than this (zero keeps everything),
	// checked every RetentionInterval (default 1h).
	Retention         time.Duration
	RetentionInterval time.Duration
	// QueueSize bounds the events waiting to be written (default 4096);
	// callers block while it is full. MaxBatch bounds one commit (default
	// 1024).
	QueueSize int
	MaxBatch  int
	Logger    *slog.Logger
}

// Log writes events to its sinks as one hash chain, in batches: whatever
// queued while the previous batch was being committed goes in the next
// one (group commit). It is safe for concurrent use.
type Log struct {
	opts   LogOptions
	log    *slog.Logger
	in     chan *pending
	closeC chan struct{}
	doneC  chan struct{}
	once   sync.Once

	// writer state, owned by run
	seq      uint64
	head     [32]byte
	signed   uint64
	lastSign time.Time
	failing  map[string]bool

	healthy atomic.Bool
	dropped atomic.Uint64
}

type pending struct {
	body []byte
	done chan error
}

var pendingPool = sync.Pool{New: func() any { return &pending{done: make(chan error, 1)} }}

// OpenLog continues the chain held by opts.Primary.
func OpenLog(ctx context.Context, opts LogOptions) (*Log, error) {
	if opts.Primary == nil || opts.Signer == nil {
		return nil, errors.New("audit log needs a primary store and a signer")
	}
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = 1000
	}
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = time.Second
	}
	if opts.RetentionInterval <= 0 {
		opts.RetentionInterval = time.Hour
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 4096
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 1024
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	seq, head, signed, err := opts.Primary.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit: reading the head of %s: %w", opts.Primary.Name(), err)
	}
	if err := checkTail(ctx, opts.Primary, opts.Signer, seq, head); err != nil {
		return nil, fmt.Errorf("audit: %s does not verify after its last checkpoint, and new checkpoints would sign it: %w; run sluice audit verify, and move the database aside to start a new log", opts.Primary.Name(), err)
	}
	l := &Log{
		opts:     opts,
		log:      opts.Logger,
		in:       make(chan *pending, opts.QueueSize),
		closeC:   make(chan struct{}),
		doneC:    make(chan struct{}),
		seq:      seq,
		head:     head,
		signed:   signed,
		lastSign: time.Now(),
		failing:  map[string]bool{},
	}
	l.healthy.Store(true)
	go l.run()
	return l, nil
}

// Healthy reports whether the last write to the primary store succeeded.
func (l *Log) Healthy() bool { return l.healthy.Load() }

// Dropped counts events given up on because the queue was full and the
// caller did not wait ([Log.Append] with wait false).
func (l *Log) Dropped() uint64 { return l.dropped.Load() }

// Append queues body (an [Event.Body]) and, with wait, returns once it is
// committed to the primary store, or with the error that kept it from
// being. Without wait, it returns at once and an event that finds the
// queue full is dropped and counted.
func (l *Log) Append(ctx context.Context, body []byte, wait bool) error {
	p := pendingPool.Get().(*pending)
	p.body = body
	if !wait {
		select {
		case l.in <- p:
			// The writer owns p now; nobody reads its result.
			return nil
		case <-l.closeC:
			return ErrClosed
		default:
			l.dropped.Add(1)
			return errors.New("audit queue full")
		}
	}
	select {
	case l.in <- p:
	case <-l.closeC:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("audit: waiting for room in the queue: %w", ctx.Err())
	}
	// The event is queued: wait for its commit even if ctx ends, so that
	// an answer the caller sees is never ahead of its record.
	err := <-p.done
	p.body = nil
	pendingPool.Put(p)
	return err
}

// Close writes what is queued, signs the head and closes the sinks.
func (l *Log) Close() error {
	var errs []error
	l.once.Do(func() {
		close(l.closeC)
		<-l.doneC
		for _, s := range l.opts.Others {
			errs = append(errs, s.Close())
		}
		errs = append(errs, l.opts.Primary.Close())
	})
	<-l.doneC
	return errors.Join(errs...)
}

func (l *Log) run() {
	defer close(l.doneC)
	tick := time.NewTicker(l.opts.CheckpointInterval)
	defer tick.Stop()
	retain := time.NewTicker(l.opts.RetentionInterval)
	defer retain.Stop()
	if l.opts.Retention > 0 {
		l.purge()
	}
	batch := make([]*pending, 0, l.opts.MaxBatch)
	for {
		batch = batch[:0]
		select {
		case p := <-l.in:
			batch = append(batch, p)
		case <-tick.C:
			if l.signed < l.seq && time.Since(l.lastSign) >= l.opts.CheckpointInterval {
				l.commit(nil, true)
			}
			continue
		case <-retain.C:
			if l.opts.Retention > 0 {
				l.purge()
			}
			continue
		case <-l.closeC:
			for l.drain(&batch) {
				l.commit(batch, false)
				batch = batch[:0]
			}
			if l.signed < l.seq {
				l.commit(nil, true)
			}
			return
		}
		l.drain(&batch)
		l.commit(batch, false)
	}
}

// drain adds what is queued to batch, up to MaxBatch, and reports whether
// batch holds anything.
func (l *Log) drain(batch *[]*pending) bool {
	for len(*batch) < l.opts.MaxBatch {
		select {
		case p := <-l.in:
			*batch = append(*batch, p)
		default:
			return len(*batch) > 0
		}
	}
	return true
}

// commit chains batch onto the head and writes it with a checkpoint when
// one is due (or forced), then tells every waiter how it went.
func (l *Log) commit(batch []*pending, forceSign bool) {
	now := nowNano()
	recs := make([]Record, len(batch))
	seq, head := l.seq, l.head
	for i, p := range batch {
		seq++
		recs[i] = Record{Seq: seq, Time: now, Prev: head, Body: p.body}
		recs[i].Hash = recs[i].ComputeHash()
		head = recs[i].Hash
	}
	var cps []Checkpoint
	if seq > l.signed && (forceSign || seq-l.signed >= uint64(l.opts.CheckpointEvery) ||
		time.Since(l.lastSign) >= l.opts.CheckpointInterval) {
		cp := Checkpoint{Kind: KindCheckpoint, Seq: seq, Hash: head, Time: now}
		l.opts.Signer.Sign(&cp)
		cps = []Checkpoint{cp}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := l.opts.Primary.Write(ctx, recs, cps)
	if err != nil {
		err = fmt.Errorf("audit: writing to %s: %w", l.opts.Primary.Name(), err)
		if l.healthy.Swap(false) {
			l.log.Error("audit store failing", "err", err)
		}
	} else {
		if !l.healthy.Swap(true) {
			l.log.Info("audit store writing again", "store", l.opts.Primary.Name())
		}
		l.seq, l.head = seq, head
		if len(cps) > 0 {
			l.signed, l.lastSign = seq, time.Now()
		}
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
	}
	cancel()
	for _, p := range batch {
		p.done <- err
	}
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
