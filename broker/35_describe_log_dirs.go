package broker

// DescribeLogDirs v0–v4: the data folder (Spate has one log dir) with, for each partition, the
// bytes of its log (Log.Size), offset lag 0 and is_future false (no replica is being moved
// between dirs). topics null means every partition; otherwise only the requested partitions
// that exist are listed (the Java broker also lists the other topics of the dir with empty
// partition lists; that answers nothing asked, so Spate leaves them out). v3+ has a top-level
// error code (0: there is no authorization); v4+ total_bytes and usable_bytes of the file
// system holding the data folder (statfs(2); -1 where unavailable). If statfs fails, the dir
// is answered KAFKA_STORAGE_ERROR, as Kafka answers an offline dir. It runs on a goroutine:
// statfs may block on a sick disk.

import (
	"path/filepath"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.DescribeLogDirs, 0, 4, true, func(b *Broker, h *reqHeader, req *kmsg.DescribeLogDirsRequest) kmsg.Response {
		resp := kmsg.NewPtrDescribeLogDirsResponse()
		dir := kmsg.NewDescribeLogDirsResponseDir()
		dir.Dir = b.cfg.DataDir
		if abs, err := filepath.Abs(b.cfg.DataDir); err == nil {
			dir.Dir = abs
		}
		total, usable, err := diskSpace(b.cfg.DataDir)
		if err != nil {
			b.log.Warn("describe log dirs: statfs", "dir", dir.Dir, "err", err)
			b.metrics.failed(h.key)
			dir.ErrorCode = errKafkaStorageError
			resp.Dirs = append(resp.Dirs, dir)
			return resp
		}
		dir.TotalBytes, dir.UsableBytes = total, usable
		dir.Topics = b.logDirTopics(req.Topics)
		resp.Dirs = append(resp.Dirs, dir)
		return resp
	})
}

// logDirTopics lists the requested partitions (all when req is nil) by topic name.
func (b *Broker) logDirTopics(req []kmsg.DescribeLogDirsRequestTopic) []kmsg.DescribeLogDirsResponseDirTopic {
	var want map[string]map[int32]bool
	if req != nil {
		want = map[string]map[int32]bool{}
		for _, rt := range req {
			if want[rt.Topic] == nil {
				want[rt.Topic] = map[int32]bool{}
			}
			for _, p := range rt.Partitions {
				want[rt.Topic][p] = true
			}
		}
	}
	var out []kmsg.DescribeLogDirsResponseDirTopic
	for _, name := range b.topics.names() {
		if want != nil && want[name] == nil {
			continue
		}
		t := b.topics.get(name)
		if t == nil {
			continue // deleted meanwhile
		}
		parts := t.partitions
		dt := kmsg.NewDescribeLogDirsResponseDirTopic()
		dt.Topic = name
		for _, p := range parts {
			if want != nil && !want[name][p.tp.Partition] {
				continue
			}
			dp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
			dp.Partition = p.tp.Partition
			dp.Size = p.log.Size()
			dt.Partitions = append(dt.Partitions, dp)
		}
		if len(dt.Partitions) > 0 {
			out = append(out, dt)
		}
	}
	return out
}
