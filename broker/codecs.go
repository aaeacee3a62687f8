package broker

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spate-broker/spate/logstore"
)

// The broker's codecs for reading records inside compressed batches (ListOffsets by time and
// max timestamp need the record, not the batch): gzip, snappy (raw and Kafka's xerial framing),
// lz4 and zstd, from franz-go's decompressor. The produce and fetch paths never decompress:
// batches are stored and served exactly as produced.
func init() {
	d := kgo.DefaultDecompressor()
	logstore.Decompress = func(codec int, src, dst []byte) ([]byte, error) {
		out, err := d.Decompress(src, kgo.CompressionCodecType(codec))
		if err != nil {
			return nil, err
		}
		return append(dst, out...), nil
	}
}
