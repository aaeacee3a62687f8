package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// SizeDist is the distribution of record value sizes in bytes (the bench header included).
// Its text form, in workload files and flags:
//
//	1024  1KiB  fixed(1024)       every record the same size
//	uniform(100, 2000)            uniform over [100, 2000]
//	normal(1024, 256)             normal with mean 1024 and standard deviation 256,
//	                              clamped to [HeaderSize, mean+6σ]
//
// Sizes take an optional unit: B, KiB, MiB, KB, MB.
type SizeDist struct {
	Kind string // "fixed", "uniform" or "normal"
	A, B int    // fixed: A; uniform: [A, B]; normal: mean A, standard deviation B
}

// FixedSize returns the distribution of one size.
func FixedSize(n int) SizeDist { return SizeDist{Kind: "fixed", A: n} }

// Sample draws one size.
func (d SizeDist) Sample(r *rand.Rand) int {
	switch d.Kind {
	case "uniform":
		return d.A + r.IntN(d.B-d.A+1)
	case "normal":
		n := int(math.Round(float64(d.A) + r.NormFloat64()*float64(d.B)))
		return min(max(n, HeaderSize), d.A+6*d.B)
	default:
		return d.A
	}
}

// Mean returns the mean size (for bytes-per-second arithmetic).
func (d SizeDist) Mean() float64 {
	switch d.Kind {
	case "uniform":
		return float64(d.A+d.B) / 2
	default:
		return float64(d.A)
	}
}

// Min returns the smallest size the distribution can draw.
func (d SizeDist) Min() int {
	if d.Kind == "normal" {
		return HeaderSize
	}
	return d.A
}

// Max returns the largest size the distribution can draw.
func (d SizeDist) Max() int {
	switch d.Kind {
	case "uniform":
		return d.B
	case "normal":
		return d.A + 6*d.B
	default:
		return d.A
	}
}

func (d SizeDist) String() string {
	switch d.Kind {
	case "uniform":
		return fmt.Sprintf("uniform(%d,%d)", d.A, d.B)
	case "normal":
		return fmt.Sprintf("normal(%d,%d)", d.A, d.B)
	default:
		return strconv.Itoa(d.A)
	}
}

// MarshalText implements encoding.TextMarshaler.
func (d SizeDist) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *SizeDist) UnmarshalText(b []byte) error {
	p, err := ParseSizeDist(string(b))
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// ParseSizeDist parses the text form (see SizeDist).
func ParseSizeDist(s string) (SizeDist, error) {
	name, args, err := splitCall(s)
	if err != nil {
		return SizeDist{}, fmt.Errorf("record size %q: %w", s, err)
	}
	n := make([]int, len(args))
	for i, a := range args {
		if n[i], err = ParseBytes(a); err != nil {
			return SizeDist{}, fmt.Errorf("record size %q: %w", s, err)
		}
	}
	var d SizeDist
	switch {
	case name == "" && len(n) == 1, name == "fixed" && len(n) == 1:
		d = FixedSize(n[0])
	case name == "uniform" && len(n) == 2:
		d = SizeDist{Kind: "uniform", A: n[0], B: n[1]}
		if d.B < d.A {
			return SizeDist{}, fmt.Errorf("record size %q: max below min", s)
		}
	case name == "normal" && len(n) == 2:
		d = SizeDist{Kind: "normal", A: n[0], B: n[1]}
	default:
		return SizeDist{}, fmt.Errorf("record size %q: want N, fixed(N), uniform(MIN,MAX) or normal(MEAN,STDDEV)", s)
	}
	return d, nil
}

// splitCall splits "name(a, b)" into name and arguments; a bare "a" has no name.
func splitCall(s string) (name string, args []string, err error) {
	s = strings.TrimSpace(s)
	open := strings.IndexByte(s, '(')
	if open < 0 {
		return "", []string{s}, nil
	}
	if !strings.HasSuffix(s, ")") {
		return "", nil, fmt.Errorf("missing )")
	}
	name = strings.ToLower(strings.TrimSpace(s[:open]))
	for a := range strings.SplitSeq(s[open+1:len(s)-1], ",") {
		args = append(args, strings.TrimSpace(a))
	}
	return name, args, nil
}

// ParseBytes parses a byte count with an optional unit (B, KiB, MiB, GiB, KB, MB, GB).
func ParseBytes(s string) (int, error) {
	s = strings.TrimSpace(s)
	i := len(s)
	for i > 0 && (s[i-1] < '0' || s[i-1] > '9') {
		i--
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	mult := map[string]int{"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
		"k": 1000, "kb": 1000, "mb": 1000 * 1000, "gb": 1000 * 1000 * 1000}[unit]
	n, err := strconv.Atoi(num)
	if err != nil || mult == 0 || n < 0 {
		return 0, fmt.Errorf("bad byte count %q", s)
	}
	return n * mult, nil
}
