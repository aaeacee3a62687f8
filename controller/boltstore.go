package controller

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// boltStore is Raft's log store and stable store in one bbolt file, laid out as
// raft-boltdb's: bucket "logs" maps an 8-byte big-endian index to an encoded raft.Log, and
// bucket "conf" holds the stable store's keys (current term, last vote). Every write is one
// bbolt transaction, synced before it returns.
//
// (raft-boltdb/v2 v2.3.1 itself cannot be linked with raft v1.8.0: it imports
// github.com/hashicorp/go-metrics/compat, which go-metrics v0.7.0 — required by raft
// v1.8.0 — no longer has. This file is the same store without the metrics.)
//
// A log value:
//
//	field        type      notes
//	───────────  ────────  ──────────────────────────────────
//	version      u8        0
//	term         uvarint
//	type         u8        raft.LogType
//	data         bytes     uvarint length, then the bytes
//	extensions   bytes     uvarint length, then the bytes
//	appended_at  varint    Unix nanoseconds, 0 when unset
type boltStore struct {
	db *bolt.DB
}

var (
	bucketLogs = []byte("logs")
	bucketConf = []byte("conf")
	// errKeyNotFound must read "not found": raft compares the text.
	errKeyNotFound = errors.New("not found")
)

func openBoltStore(path string) (*boltStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open raft store %q: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketLogs); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketConf)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init raft store %q: %w", path, err)
	}
	return &boltStore{db: db}, nil
}

func (s *boltStore) Close() error { return s.db.Close() }

func indexKey(i uint64) []byte { return binary.BigEndian.AppendUint64(nil, i) }

// FirstIndex implements raft.LogStore.
func (s *boltStore) FirstIndex() (uint64, error) {
	var idx uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketLogs).Cursor().First(); k != nil {
			idx = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return idx, err
}

// LastIndex implements raft.LogStore.
func (s *boltStore) LastIndex() (uint64, error) {
	var idx uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketLogs).Cursor().Last(); k != nil {
			idx = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return idx, err
}

// GetLog implements raft.LogStore.
func (s *boltStore) GetLog(idx uint64, log *raft.Log) error {
	return s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketLogs).Get(indexKey(idx))
		if v == nil {
			return raft.ErrLogNotFound
		}
		if err := decodeLog(v, log); err != nil {
			return fmt.Errorf("raft log %d: %w", idx, err)
		}
		log.Index = idx
		return nil
	})
}

// StoreLog implements raft.LogStore.
func (s *boltStore) StoreLog(log *raft.Log) error { return s.StoreLogs([]*raft.Log{log}) }

// StoreLogs implements raft.LogStore.
func (s *boltStore) StoreLogs(logs []*raft.Log) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLogs)
		for _, l := range logs {
			if err := b.Put(indexKey(l.Index), appendLog(nil, l)); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteRange implements raft.LogStore.
func (s *boltStore) DeleteRange(lo, hi uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLogs)
		var keys [][]byte // collected first: deleting under a cursor can skip keys
		c := b.Cursor()
		for k, _ := c.Seek(indexKey(lo)); k != nil && binary.BigEndian.Uint64(k) <= hi; k, _ = c.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// Set implements raft.StableStore.
func (s *boltStore) Set(k, v []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketConf).Put(k, v) })
}

// Get implements raft.StableStore.
func (s *boltStore) Get(k []byte) ([]byte, error) {
	var v []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if x := tx.Bucket(bucketConf).Get(k); x != nil {
			v = append([]byte{}, x...)
		}
		return nil
	})
	if err == nil && v == nil {
		err = errKeyNotFound
	}
	return v, err
}

// SetUint64 implements raft.StableStore.
func (s *boltStore) SetUint64(k []byte, v uint64) error { return s.Set(k, indexKey(v)) }

// GetUint64 implements raft.StableStore.
func (s *boltStore) GetUint64(k []byte) (uint64, error) {
	v, err := s.Get(k)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: stable store key %q has %d bytes", ErrCorrupt, k, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func appendLog(dst []byte, l *raft.Log) []byte {
	dst = append(dst, 0)
	dst = appendUvarint(dst, l.Term)
	dst = append(dst, byte(l.Type))
	dst = appendUvarint(dst, uint64(len(l.Data)))
	dst = append(dst, l.Data...)
	dst = appendUvarint(dst, uint64(len(l.Extensions)))
	dst = append(dst, l.Extensions...)
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	return appendVarint(dst, at)
}

// decodeLog decodes a log value; the byte slices are copied out of bbolt's memory.
func decodeLog(v []byte, l *raft.Log) error {
	r := reader{b: v}
	if r.byte() != 0 && r.err == nil {
		return fmt.Errorf("%w: unknown raft log version", ErrCorrupt)
	}
	l.Term = r.uvarint()
	l.Type = raft.LogType(r.byte())
	l.Data = r.bytes()
	l.Extensions = r.bytes()
	at := r.varint()
	if r.err != nil {
		return r.err
	}
	l.AppendedAt = time.Time{}
	if at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	return nil
}

// bytes reads a length-prefixed byte string into a new slice (nil when empty).
func (r *reader) bytes() []byte {
	n := r.count(1)
	if r.err != nil || n == 0 {
		return nil
	}
	v := append([]byte(nil), r.b[:n]...)
	r.b = r.b[n:]
	return v
}
