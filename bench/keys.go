package bench

import (
	"fmt"
	"math/rand/v2"
	"strconv"
)

// KeyDist says which keys records carry. Its text form:
//
//	none            no key: the client spreads records over partitions (sticky partitioner)
//	random          a fresh random 16-byte key per record; random(N): N bytes
//	distinct(N)     one of N fixed keys ("key-0" … "key-<N−1>"), chosen uniformly at random
//
// Records with the same key go to the same partition, so with distinct keys the verifier's
// per-key order check is meaningful.
type KeyDist struct {
	Kind string // "none", "random" or "distinct"
	N    int    // random: key bytes; distinct: number of keys
}

const maxDistinctKeys = 1 << 24

func (d KeyDist) String() string {
	switch d.Kind {
	case "random":
		return fmt.Sprintf("random(%d)", d.N)
	case "distinct":
		return fmt.Sprintf("distinct(%d)", d.N)
	default:
		return "none"
	}
}

// MarshalText implements encoding.TextMarshaler.
func (d KeyDist) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *KeyDist) UnmarshalText(b []byte) error {
	p, err := ParseKeyDist(string(b))
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// ParseKeyDist parses the text form (see KeyDist).
func ParseKeyDist(s string) (KeyDist, error) {
	name, args, err := splitCall(s)
	if err != nil {
		return KeyDist{}, fmt.Errorf("keys %q: %w", s, err)
	}
	if name == "" && len(args) == 1 { // a bare word
		name, args = args[0], nil
	}
	n := 0
	if len(args) == 1 {
		if n, err = strconv.Atoi(args[0]); err != nil || n <= 0 {
			return KeyDist{}, fmt.Errorf("keys %q: want a positive count", s)
		}
	}
	switch {
	case (name == "none" || name == "") && len(args) == 0:
		return KeyDist{Kind: "none"}, nil
	case name == "random" && len(args) == 0:
		return KeyDist{Kind: "random", N: 16}, nil
	case name == "random" && len(args) == 1:
		return KeyDist{Kind: "random", N: n}, nil
	case name == "distinct" && len(args) == 1:
		if n > maxDistinctKeys {
			return KeyDist{}, fmt.Errorf("keys %q: at most %d distinct keys", s, maxDistinctKeys)
		}
		return KeyDist{Kind: "distinct", N: n}, nil
	}
	return KeyDist{}, fmt.Errorf("keys %q: want none, random, random(BYTES) or distinct(N)", s)
}

// keyGen draws keys. One per producer; the distinct-key table is shared and read-only.
type keyGen struct {
	d     KeyDist
	table [][]byte
}

func newKeyTable(d KeyDist) [][]byte {
	if d.Kind != "distinct" {
		return nil
	}
	t := make([][]byte, d.N)
	for i := range t {
		t[i] = strconv.AppendInt([]byte("key-"), int64(i), 10)
	}
	return t
}

func (g *keyGen) next(r *rand.Rand) []byte {
	switch g.d.Kind {
	case "random":
		k := make([]byte, g.d.N)
		for i := 0; i < len(k); i += 8 {
			v := r.Uint64()
			for j := i; j < len(k) && j < i+8; j++ {
				k[j] = byte(v >> (8 * (j - i)))
			}
		}
		return k
	case "distinct":
		return g.table[r.IntN(len(g.table))]
	default:
		return nil
	}
}
