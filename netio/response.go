package netio

import (
	"math"
	"os"
)

// Seq is a request's sequence number on its connection: 0, 1, 2, ...
type Seq uint64

// Request is one inbound frame. It and Frame are valid only during
// Handler.Serve; see the package doc.
type Request struct {
	Seq Seq
	// Frame is the payload after the 4-byte size prefix.
	Frame []byte

	chunks []uint32 // large frames: CRC-32C of each whole crcChunk of Frame (crc.go)
}

// FileRegion is Length bytes of File from Offset, sent with sendfile(2).
// File must stay open until the response's Release is called.
type FileRegion struct {
	File   *os.File
	Offset int64
	Length int64
}

// Part is one piece of a response payload: Bytes, or the file region when
// Region.File is not nil (then Bytes is ignored).
type Part struct {
	Bytes  []byte
	Region FileRegion
}

// Response is a response payload, written as its parts in order after a
// 4-byte size prefix that netio adds. Ownership of Parts and everything they
// refer to passes to netio at Reply and returns at Release.
type Response struct {
	Parts []Part
	// Release, if not nil, is called exactly once after the response was
	// written or dropped because the connection closed.
	Release func()
}

// AppendBytes appends a byte part.
func (r *Response) AppendBytes(b []byte) {
	r.Parts = append(r.Parts, Part{Bytes: b})
}

// AppendFile appends a file region part.
func (r *Response) AppendFile(f *os.File, offset, length int64) {
	r.Parts = append(r.Parts, Part{Region: FileRegion{File: f, Offset: offset, Length: length}})
}

// Len returns the payload length, without the size prefix.
func (r *Response) Len() int64 {
	var n int64
	for i := range r.Parts {
		n += partLen(&r.Parts[i])
	}
	return n
}

func partLen(p *Part) int64 {
	if p.Region.File != nil {
		return p.Region.Length
	}
	return int64(len(p.Bytes))
}

// payloadSize validates r and returns its payload length as a frame size.
func (r *Response) payloadSize() uint32 {
	var n int64
	for i := range r.Parts {
		p := &r.Parts[i]
		if p.Region.File != nil && (p.Region.Offset < 0 || p.Region.Length < 0) {
			panic("BUG: netio: negative file region")
		}
		n += partLen(p)
		if n > math.MaxInt32 {
			panic("BUG: netio: response larger than a frame allows")
		}
	}
	return uint32(n)
}

func (r *Response) release() {
	if r.Release != nil {
		r.Release()
	}
}
