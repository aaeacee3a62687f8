package broker

import (
	"bytes"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spate-broker/spate/logstore"
)

// The broker's codecs for reading records inside compressed batches (ListOffsets by time and
// max timestamp need the record, not the batch): gzip, snappy (raw and Kafka's xerial framing),
// lz4 and zstd, from franz-go's codecs; the cleaner also recompresses batches it re-encodes.
// The fetch path never decompresses; produce decompresses only to check keys on compacted
// topics.
func init() {
	d := kgo.DefaultDecompressor()
	logstore.Decompress = func(codec int, src, dst []byte) ([]byte, error) {
		out, err := d.Decompress(src, kgo.CompressionCodecType(codec))
		if err != nil {
			return nil, err
		}
		return append(dst, out...), nil
	}
	// The cleaner recompresses a batch it re-encodes with the batch's codec.
	compressors := map[int]kgo.Compressor{}
	for codec, cc := range map[int]kgo.CompressionCodec{1: kgo.GzipCompression(), 2: kgo.SnappyCompression(),
		3: kgo.Lz4Compression(), 4: kgo.ZstdCompression()} {
		if c, err := kgo.DefaultCompressor(cc); err == nil && c != nil {
			compressors[codec] = c
		}
	}
	logstore.Compress = func(codec int, src, dst []byte) ([]byte, error) {
		c := compressors[codec]
		if c == nil {
			return nil, fmt.Errorf("no compressor for codec %d", codec)
		}
		var buf bytes.Buffer
		out, used := c.Compress(&buf, src)
		if out == nil || int(used) != codec {
			return nil, fmt.Errorf("compress with codec %d failed", codec)
		}
		return append(dst, out...), nil
	}
}
