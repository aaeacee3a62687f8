package bench

import (
	"bytes"
	"errors"
	"testing"
)

func TestRecordRoundTrip(t *testing.T) {
	h := RecordHeader{RunID: 0xdeadbeef, Producer: 7, Seq: 1<<40 + 3, Intended: -5}
	key := []byte("key-1")
	v := AppendRecord([]byte("prefix"), key, h, []byte("payload bytes"))
	if !bytes.HasPrefix(v, []byte("prefix")) {
		t.Fatal("AppendRecord lost dst")
	}
	v = v[len("prefix"):]
	if len(v) != HeaderSize+len("payload bytes") {
		t.Fatalf("len %d", len(v))
	}
	got, err := DecodeRecord(key, v)
	if err != nil || got != h {
		t.Fatalf("DecodeRecord = %+v, %v; want %+v", got, err, h)
	}
	// FillRecord over a buffer with the payload in place makes the same bytes.
	w := make([]byte, len(v))
	copy(w[HeaderSize:], "payload bytes")
	FillRecord(w, key, h)
	if !bytes.Equal(v, w) {
		t.Fatal("FillRecord and AppendRecord differ")
	}
	// The smallest record: a header and no payload.
	if _, err := DecodeRecord(nil, AppendRecord(nil, nil, h, nil)); err != nil {
		t.Fatal(err)
	}
}

// TestRecordEveryBitFlipIsCaught flips each bit of the key and value: flips in the magic and
// version make the record foreign, every other flip is a checksum mismatch.
func TestRecordEveryBitFlipIsCaught(t *testing.T) {
	key := []byte("k")
	v := AppendRecord(nil, key, RecordHeader{RunID: 1, Producer: 2, Seq: 3, Intended: 4}, []byte("some payload"))
	for i := range (len(key) + len(v)) * 8 {
		k, val := bytes.Clone(key), bytes.Clone(v)
		buf, at := val, i/8-len(key)
		if i/8 < len(key) {
			buf, at = k, i/8
		}
		buf[at] ^= 1 << (i % 8)
		_, err := DecodeRecord(k, val)
		want := ErrCorrupt
		if buf[0] == val[0] && at < 3 {
			want = ErrForeign
		}
		if !errors.Is(err, want) {
			t.Errorf("bit %d (byte %d of %s): got %v, want %v", i%8, at, map[bool]string{true: "key", false: "value"}[i/8 < len(key)], err, want)
		}
	}
	for _, short := range [][]byte{nil, v[:HeaderSize-1], []byte("plain text value that is long enough")} {
		if _, err := DecodeRecord(nil, short); !errors.Is(err, ErrForeign) {
			t.Errorf("%q: got %v, want ErrForeign", short, err)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte("k"), AppendRecord(nil, []byte("k"), RecordHeader{RunID: 1, Seq: 9}, []byte("x")))
	f.Add([]byte{}, []byte("SB\x01"))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		h, err := DecodeRecord(key, value)
		if err != nil {
			return
		}
		// A valid record re-encodes to the same bytes (flags, reserved, are written as 0).
		again := AppendRecord(nil, key, h, value[HeaderSize:])
		if value[3] == 0 && !bytes.Equal(again, value) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, value)
		}
	})
}
