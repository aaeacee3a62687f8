package broker

// Wiring of the group coordinator (package coordinator): the Host it reaches the
// __consumer_offsets topic through, its start and stop, and registerAsync for the group
// handlers that answer later (a JoinGroup parked until the rebalance completes).
//
// __consumer_offsets is created on the first FindCoordinator for a group, as Kafka does, with
// offsets.topic.num.partitions partitions, cleanup.policy=compact and
// offsets.topic.segment.bytes segments. Clients may read it; they may not produce to it.

import (
	"fmt"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/coordinator"
	"github.com/spate-broker/spate/logstore"
	"github.com/spate-broker/spate/netio"
)

// offsetsHost is the coordinator's view of the broker.
type offsetsHost struct{ b *Broker }

func (h offsetsHost) OffsetsTopic(create bool, partitions int32) (int32, error) {
	tm := h.b.topics
	t := tm.get(coordinator.OffsetsTopic)
	if t == nil && create {
		configs := map[string]string{
			"cleanup.policy":   "compact",
			"compression.type": "producer",
			"segment.bytes":    strconv.FormatInt(h.b.cfg.Groups.OffsetsTopicSegmentBytes, 10),
		}
		if h.b.cfg.Groups.OffsetsTopicSegmentBytes <= 0 {
			delete(configs, "segment.bytes")
		}
		created, code, msg := tm.create(coordinator.OffsetsTopic, partitions, configs, false)
		switch {
		case code == errTopicAlreadyExists:
			t = tm.get(coordinator.OffsetsTopic)
		case code != 0:
			return 0, fmt.Errorf("create %s: %s (kafka error %d)", coordinator.OffsetsTopic, msg, code)
		default:
			t = created
		}
	}
	if t == nil {
		return 0, nil
	}
	return int32(len(t.partitions)), nil
}

func (h offsetsHost) OffsetsLog(p int32) *logstore.Log {
	if part := h.b.topics.partition(coordinator.OffsetsTopic, p); part != nil {
		return part.log
	}
	return nil
}

func (h offsetsHost) AppendOffsets(p int32, batch []byte) error {
	return h.b.appendInternal(coordinator.OffsetsTopic, p, batch)
}

func (h offsetsHost) PartitionCount(topic string) int32 {
	if t := h.b.topics.get(topic); t != nil {
		return int32(len(t.partitions))
	}
	return 0
}

// startGroups starts the coordinator, loading every group when __consumer_offsets exists.
func (b *Broker) startGroups() error {
	c, err := coordinator.New(b.cfg.Groups, offsetsHost{b}, b.log.With("component", "coordinator"), b.metrics.set)
	if err != nil {
		return fmt.Errorf("group coordinator: %w", err)
	}
	c.ExposeLag(b.metrics.set, offsetsHost{b}.HighWatermark)
	b.groups = c
	return nil
}

// drainGroups answers parked group requests so that the network server can stop.
func (b *Broker) drainGroups() {
	if b.groups != nil {
		b.groups.Drain()
	}
}

func (b *Broker) closeGroups() {
	if b.groups != nil {
		b.groups.Close()
	}
}

// registerAsync adds a kmsg-decoded handler that answers through reply — at once or later,
// from any goroutine, exactly once. With slow set, fn runs on a goroutine (it may append to
// a log); else on the event loop. The request is decoded from a copy of the frame, so it may
// be kept.
func registerAsync[Req kmsg.Request, Resp kmsg.Response](key kmsg.Key, min, max int16, slow bool, fn func(b *Broker, c *netio.Conn, h *reqHeader, req Req, reply func(Resp))) {
	k := key.Int16()
	apis[k] = api{min: min, max: max, flexible: firstFlexible(k), serve: func(b *Broker, c *netio.Conn, seq netio.Seq, h *reqHeader, body []byte) {
		req := kmsg.RequestForKey(k).(Req)
		req.SetVersion(h.version)
		// kmsg decodes bytes fields (protocol metadata, assignments) as views of its input,
		// and the frame is the event loop's buffer: decode a copy, since the request outlives
		// Serve.
		if err := req.ReadFrom(append([]byte(nil), body...)); err != nil {
			b.log.Debug("malformed request", "request", h.String(), "err", err)
			b.metrics.malformed.Inc()
			c.Close()
			return
		}
		hc := *h
		reply := func(resp Resp) {
			resp.SetVersion(hc.version)
			b.reply(c, seq, &hc, resp)
		}
		if slow {
			go fn(b, c, &hc, req, reply)
		} else {
			fn(b, c, &hc, req, reply)
		}
	}}
}

// groupClient describes a request's client as the coordinator records it.
func groupClient(c *netio.Conn, h *reqHeader) coordinator.Client {
	host := ""
	if c != nil {
		if a := c.RemoteAddr(); a != nil {
			host = a.String()
			if ip, _, err := net.SplitHostPort(host); err == nil {
				host = ip
			}
		}
	}
	return coordinator.Client{ID: h.clientID, Host: "/" + host}
}

// HighWatermark is a partition's high watermark, for the consumer lag metric.
func (h offsetsHost) HighWatermark(topic string, p int32) (int64, bool) {
	part := h.b.topics.partition(topic, p)
	if part == nil {
		return 0, false
	}
	return part.highWatermark(), true
}
