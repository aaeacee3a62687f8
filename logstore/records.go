package logstore

import "encoding/binary"

// A record inside a batch (after the 61-byte header; compressed as a whole when the batch's
// compression bits are set). Integers are zig-zag varints unless noted.
//
//	length           varint   bytes after this field
//	attributes       int8     unused
//	timestampDelta   varlong  from BaseTimestamp
//	offsetDelta      varint   from BaseOffset
//	keyLength        varint   -1 = null
//	key              bytes
//	valueLength      varint   -1 = null
//	value            bytes
//	headerCount      varint
//	headers          (keyLength varint, key, valueLength varint, value) * headerCount

// RecordInfo is what the log needs of one record.
type RecordInfo struct {
	OffsetDelta int32
	Timestamp   int64
}

// ForEachRecord decodes the records of a plain (uncompressed or already decompressed) records
// section and calls fn for each until it returns false. It returns false on malformed input.
// baseTs is the batch's BaseTimestamp; with logAppendTs >= 0 every record gets that time.
func ForEachRecord(recs []byte, count int32, baseTs, logAppendTs int64, fn func(RecordInfo) bool) bool {
	for i := int32(0); i < count; i++ {
		length, n := binary.Varint(recs)
		if n <= 0 || length < 0 || int64(len(recs)-n) < length {
			return false
		}
		body := recs[n : n+int(length)]
		recs = recs[n+int(length):]
		if len(body) < 1 {
			return false
		}
		body = body[1:] // attributes
		tsDelta, n := binary.Varint(body)
		if n <= 0 {
			return false
		}
		body = body[n:]
		offDelta, n := binary.Varint(body)
		if n <= 0 || offDelta < 0 || offDelta > 1<<31-1 {
			return false
		}
		ts := baseTs + tsDelta
		if logAppendTs >= 0 {
			ts = logAppendTs
		}
		if !fn(RecordInfo{OffsetDelta: int32(offDelta), Timestamp: ts}) {
			return true
		}
	}
	return true
}

// forEachRecord calls fn with the offset and timestamp of each record of a batch; a
// compressed batch is streamed (scanCompressed), never decompressed whole. Without codecs
// (CanDecompress) a compressed batch is reported as one record at its base offset with its
// max timestamp (the batch is then the finest grain).
func forEachRecord(batch []byte, h *BatchHeader, fn func(off Offset, ts int64) bool) {
	appendTs := int64(-1)
	if h.Attributes&AttrLogAppendTime != 0 {
		appendTs = h.MaxTimestamp
	}
	recs := batch[BatchHeaderSize:]
	if c := h.Compression(); c != 0 {
		if !CanDecompress() {
			fn(h.BaseOffset, h.MaxTimestamp)
			return
		}
		scanCompressed(c, recs, h.RecordCount, func(r *recordHead) bool {
			ts := h.BaseTimestamp + r.tsDelta
			if appendTs >= 0 {
				ts = appendTs
			}
			return fn(h.BaseOffset+r.offsetDelta, ts)
		})
		return
	}
	ForEachRecord(recs, h.RecordCount, h.BaseTimestamp, appendTs, func(r RecordInfo) bool {
		return fn(h.BaseOffset+int64(r.OffsetDelta), r.Timestamp)
	})
}

// firstRecordAtOrAfter finds the first record of the batch with timestamp >= ts and offset
// >= minOffset.
func firstRecordAtOrAfter(batch []byte, h *BatchHeader, ts int64, minOffset Offset) (TimestampOffset, bool) {
	var out TimestampOffset
	found := false
	forEachRecord(batch, h, func(off Offset, t int64) bool {
		if t >= ts && off >= minOffset {
			out, found = TimestampOffset{Offset: off, Timestamp: t}, true
			return false
		}
		return true
	})
	if !found && h.Compression() != 0 && !CanDecompress() {
		return TimestampOffset{Offset: max(h.BaseOffset, minOffset), Timestamp: h.MaxTimestamp}, h.MaxTimestamp >= ts
	}
	return out, found
}
