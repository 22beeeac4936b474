package passthrough

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// ErrPRConflict is returned by [PRStore.CompareAndSwap] when the record
// changed since the version the caller loaded: someone else (another
// goroutine, another gateway) wrote it first. The caller loads again and
// retries.
var ErrPRConflict = errors.New("passthrough: persistent reservation record changed concurrently")

// ErrPRUnavailable is wrapped by a [PRStore]'s errors when the store is
// unreachable for now (a shared store that lost its quorum, timed out or
// is electing a leader) and the same request may succeed later. Such a
// failure is answered with NOT READY, LOGICAL UNIT NOT ACCESSIBLE,
// ASYMMETRIC ACCESS STATE TRANSITION, which initiators retry, instead of
// a HARDWARE ERROR. A compare-and-swap that fails so may or may not have
// been stored; the retry loads the record again.
var ErrPRUnavailable = errors.New("passthrough: persistent reservation store unavailable")

// PRRecord is the persistent reservation state of one logical unit as a
// [PRStore] keeps it (SPC-4 5.13): the registrations, the reservation and
// the counters that survive a restart when APTPL is set. The zero value is
// a logical unit with no registration and no reservation.
type PRRecord struct {
	// Generation is the PRGENERATION counter (SPC-4 6.16.2).
	Generation uint32 `json:"generation"`
	// APTPL is the last valid APTPL bit received (SPC-4 6.17.3): when set,
	// the state persists through power loss.
	APTPL bool `json:"aptpl"`
	// Type is the reservation's TYPE, 0 when no reservation exists. The
	// SCOPE is always LU_SCOPE (0), the only one SPC-4 keeps.
	Type PRType `json:"type,omitempty"`
	// Registrations in the order they were made (READ KEYS order).
	Registrations []PRRegistration `json:"registrations,omitempty"`
}

// PRRegistration is one registered I_T nexus, or, with an empty ISID, every
// initiator port of an iSCSI initiator device through one target port
// (registered with an iSCSI TransportID of format 00b, SPC-4 7.6.4.6).
type PRRegistration struct {
	// Key is the reservation key, never 0.
	Key uint64 `json:"key"`
	// InitiatorName is the iSCSI initiator name, lower case.
	InitiatorName string `json:"initiator"`
	// ISID is the initiator session identifier in 12 lower-case hex
	// digits, or "" for a registration of every initiator port of
	// InitiatorName.
	ISID string `json:"isid,omitempty"`
	// TargetPort names the target port ("targetname,t,0x0001").
	TargetPort string `json:"target_port"`
	// RelTargetPortID is the target port's relative target port identifier.
	RelTargetPortID uint16 `json:"rtpi"`
	// AllTgPt marks registrations made with ALL_TG_PT set: one per target
	// port, changed and removed together.
	AllTgPt bool `json:"all_tg_pt,omitempty"`
	// Holder marks the holder of a reservation that is not of an all
	// registrants type (with an all registrants type every registration
	// holds it and none is marked).
	Holder bool `json:"holder,omitempty"`
}

// nexus returns the identity r stands for, as handed to [PRHooks].
func (r *PRRegistration) nexus() PRNexus {
	return PRNexus{InitiatorName: r.InitiatorName, ISID: r.ISID, TargetPort: r.TargetPort, RelTargetPortID: r.RelTargetPortID}
}

// clone returns a copy of rec that shares no memory with it.
func (rec PRRecord) clone() PRRecord {
	rec.Registrations = append([]PRRegistration(nil), rec.Registrations...)
	return rec
}

// Validate checks the invariants every record must keep: a known TYPE,
// a reservation only while registrations exist, exactly one marked holder
// for a reservation that is not of an all registrants type and none
// otherwise, non-zero keys, well-formed names, and no I_T nexus covered by
// two registrations.
func (rec *PRRecord) Validate() error {
	if rec.Type != 0 && !rec.Type.Valid() {
		return fmt.Errorf("passthrough: persistent reservation type %d", rec.Type)
	}
	if rec.Type != 0 && len(rec.Registrations) == 0 {
		return errors.New("passthrough: persistent reservation without registrations")
	}
	holders := 0
	for i := range rec.Registrations {
		r := &rec.Registrations[i]
		if r.Key == 0 {
			return fmt.Errorf("passthrough: registration %d has key 0", i)
		}
		if !validInitiatorName(r.InitiatorName) || r.TargetPort == "" {
			return fmt.Errorf("passthrough: registration %d: bad initiator %q or target port %q", i, r.InitiatorName, r.TargetPort)
		}
		if r.ISID != "" && !validISID(r.ISID) {
			return fmt.Errorf("passthrough: registration %d: bad ISID %q", i, r.ISID)
		}
		if r.Holder {
			holders++
		}
		for j := range i {
			if overlaps(&rec.Registrations[j], r) {
				return fmt.Errorf("passthrough: registrations %d and %d cover the same I_T nexus", j, i)
			}
		}
	}
	want := 0
	if rec.Type != 0 && !rec.Type.AllRegistrants() {
		want = 1
	}
	if holders != want {
		return fmt.Errorf("passthrough: %d reservation holders marked for type %d", holders, rec.Type)
	}
	return nil
}

// overlaps reports whether a and b cover a common I_T nexus.
func overlaps(a, b *PRRegistration) bool {
	return strings.EqualFold(a.InitiatorName, b.InitiatorName) &&
		strings.EqualFold(a.TargetPort, b.TargetPort) &&
		(a.ISID == "" || b.ISID == "" || strings.EqualFold(a.ISID, b.ISID))
}

// PRStore keeps the persistent reservation records of logical units, each
// under a key, as versioned records updated by compare-and-swap, so that
// several writers (goroutines today, gateways sharing one store later)
// never lose each other's updates.
type PRStore interface {
	// Load returns key's record and its version; version 0 and the zero
	// record when none was ever stored.
	Load(ctx context.Context, key string) (PRRecord, uint64, error)
	// CompareAndSwap stores rec under key if key's version is still
	// version, and returns the new version. It fails with an error
	// wrapping [ErrPRConflict] when the version moved on, and with another
	// error when the record could not be kept; either way nothing changed.
	CompareAndSwap(ctx context.Context, key string, version uint64, rec PRRecord) (uint64, error)
	// Durable reports whether records with APTPL set survive a restart of
	// the gateway (REPORT CAPABILITIES' PTPL_C; APTPL is refused when it
	// is false).
	Durable() bool
}

// memEntry is one stored record and its version.
type memEntry struct {
	rec PRRecord
	ver uint64
}

// MemStore is a [PRStore] in memory: records live as long as the process
// (APTPL cannot be set with it). The zero value is ready to use.
type MemStore struct {
	mu   sync.Mutex
	recs map[string]memEntry
}

// Load implements [PRStore].
func (s *MemStore) Load(_ context.Context, key string) (PRRecord, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.recs[key]
	return e.rec.clone(), e.ver, nil
}

// CompareAndSwap implements [PRStore].
func (s *MemStore) CompareAndSwap(_ context.Context, key string, version uint64, rec PRRecord) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recs == nil {
		s.recs = make(map[string]memEntry)
	}
	if e := s.recs[key]; e.ver != version {
		return e.ver, fmt.Errorf("%w: %q is at version %d, not %d", ErrPRConflict, key, e.ver, version)
	}
	s.recs[key] = memEntry{rec: rec.clone(), ver: version + 1}
	return version + 1, nil
}

// Durable implements [PRStore]: a MemStore forgets everything at exit.
func (*MemStore) Durable() bool { return false }

// fileFormat is the version of FileStore's file layout.
const fileFormat = 1

// prFile is the content of one FileStore file.
type prFile struct {
	Format  int      `json:"format"`
	Key     string   `json:"key"`
	Version uint64   `json:"version"`
	Record  PRRecord `json:"record"`
}

// FileStore is a [PRStore] that writes every record with APTPL set to its
// own JSON file in a directory, atomically (temporary file, fsync, rename,
// fsync of the directory), and reads it back after a restart. A record
// with APTPL clear is kept in memory only and its file removed, so a
// restart does not bring it back (SPC-4 5.13.5: without APTPL, power loss
// releases the reservation and removes the registrations).
//
// A FileStore assumes it is the only writer of its directory.
type FileStore struct {
	dir  string
	mu   sync.Mutex
	recs map[string]memEntry // loaded or written records
}

// NewFileStore returns a FileStore keeping its files in dir, which it
// creates (mode 0700) when missing.
func NewFileStore(dir string) (*FileStore, error) {
	if dir == "" {
		return nil, errors.New("passthrough: persistent reservation state directory not set")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("passthrough: persistent reservation state directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("passthrough: persistent reservation state directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: errors.New("not a directory")}
	}
	return &FileStore{dir: dir, recs: make(map[string]memEntry)}, nil
}

// Durable implements [PRStore].
func (*FileStore) Durable() bool { return true }

// path returns the file that holds key: the key with every byte outside
// [A-Za-z0-9._-] replaced by '_', cut to 64 bytes, then a hash of the whole
// key, so distinct keys never share a file and no key escapes the
// directory.
func (s *FileStore) path(key string) string {
	var b strings.Builder
	for i := 0; i < len(key) && b.Len() < 64; i++ {
		c := key[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '_':
			b.WriteByte(c)
		default:
			b.WriteByte('_')
		}
	}
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(s.dir, "pr-"+b.String()+"-"+hex.EncodeToString(sum[:8])+".json")
}

// load returns key's entry, reading its file the first time. Called with
// s.mu held.
func (s *FileStore) load(key string) (memEntry, error) {
	if e, ok := s.recs[key]; ok {
		return e, nil
	}
	p := s.path(key)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		s.recs[key] = memEntry{}
		return memEntry{}, nil
	}
	if err != nil {
		return memEntry{}, err
	}
	var f prFile
	if err := json.Unmarshal(data, &f); err != nil {
		return memEntry{}, &fs.PathError{Op: "decode", Path: p, Err: err}
	}
	switch {
	case f.Format != fileFormat:
		err = fmt.Errorf("format %d, want %d", f.Format, fileFormat)
	case f.Key != key:
		err = fmt.Errorf("holds key %q, not %q", f.Key, key)
	case f.Version == 0:
		err = errors.New("version 0")
	default:
		err = f.Record.Validate()
	}
	if err != nil {
		return memEntry{}, &fs.PathError{Op: "decode", Path: p, Err: err}
	}
	e := memEntry{rec: f.Record, ver: f.Version}
	s.recs[key] = e
	return e, nil
}

// Load implements [PRStore].
func (s *FileStore) Load(_ context.Context, key string) (PRRecord, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.load(key)
	if err != nil {
		return PRRecord{}, 0, fmt.Errorf("passthrough: load persistent reservations: %w", err)
	}
	return e.rec.clone(), e.ver, nil
}

// CompareAndSwap implements [PRStore]: the record is on disk (APTPL set)
// or its file is gone (APTPL clear) before the new version is visible.
func (s *FileStore) CompareAndSwap(_ context.Context, key string, version uint64, rec PRRecord) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.load(key)
	if err != nil {
		return 0, fmt.Errorf("passthrough: load persistent reservations: %w", err)
	}
	if e.ver != version {
		return e.ver, fmt.Errorf("%w: %q is at version %d, not %d", ErrPRConflict, key, e.ver, version)
	}
	next := memEntry{rec: rec.clone(), ver: version + 1}
	if rec.APTPL {
		data, err := json.MarshalIndent(prFile{Format: fileFormat, Key: key, Version: next.ver, Record: next.rec}, "", "\t")
		if err != nil {
			return 0, fmt.Errorf("passthrough: encode persistent reservations: %w", err)
		}
		err = writeFileAtomic(s.path(key), append(data, '\n'))
		if err != nil {
			return 0, fmt.Errorf("passthrough: save persistent reservations: %w", err)
		}
	} else if err := removeFileDurable(s.path(key)); err != nil {
		return 0, fmt.Errorf("passthrough: drop persistent reservations: %w", err)
	}
	s.recs[key] = next
	return next.ver, nil
}

// writeFileAtomic replaces path with data so that, whatever crashes when,
// path holds either the old or the new content: write a temporary file in
// the same directory, fsync it, rename it over path, fsync the directory.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".pr-*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp) // best effort: the write already failed
		}
	}()
	if _, err = f.Write(data); err != nil {
		_ = f.Close() // the write error is the one to report
		return err
	}
	if err = f.Sync(); err != nil {
		_ = f.Close() // the sync error is the one to report
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// removeFileDurable removes path, if it exists, and fsyncs its directory
// so the removal survives a crash.
func removeFileDurable(path string) error {
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir fsyncs directory dir, making renames and removals in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
