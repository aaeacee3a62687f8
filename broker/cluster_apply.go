package broker

// The image applier (cluster mode): it turns each controller Image into the broker's topic
// views and replicas. It is the only writer of the views in cluster mode and runs on one
// goroutine, holding topicManager.mu while it applies an image.
//
// For every topic of the image it publishes a *topic whose partitions slice holds this
// node's replicas (nil for partitions hosted elsewhere). A partition that names this node
// as a replica gets its log (created when new) and its role: leader at the image's leader
// epoch, or follower of the image's leader (replica.go). A replica moved away or a topic
// deleted loses its log.

import (
	"maps"
	"slices"

	"github.com/spate-broker/spate/controller"
)

func (c *cluster) applyLoop() {
	defer c.wg.Done()
	ch, cancel := c.ctl.Subscribe()
	defer cancel()
	c.apply(c.ctl.Image())
	for {
		select {
		case <-c.stop:
			return
		case <-ch:
			c.apply(c.ctl.Image())
		}
	}
}

func (c *cluster) apply(img *controller.Image) {
	tm := c.b.topics
	tm.mu.Lock()
	defer tm.mu.Unlock()
	cur := tm.view.Load()
	v := &topicView{byName: map[string]*topic{}, byID: map[[16]byte]*topic{}}
	for _, ti := range img.Topics() {
		old := cur.byID[ti.ID]
		nt := &topic{
			meta:       topicMeta{Name: ti.Name, ID: ti.ID, Partitions: int32(len(ti.Partitions)), Configs: ti.Configs},
			info:       ti,
			partitions: make([]*partition, len(ti.Partitions)),
		}
		configsChanged := old != nil && !maps.Equal(old.meta.Configs, ti.Configs)
		for i, ps := range ti.Partitions {
			var p *partition
			if old != nil && i < len(old.partitions) {
				p = old.partitions[i]
			}
			switch {
			case slices.Contains(ps.Replicas, c.self):
				if p == nil {
					var err error
					if p, err = tm.openPartition(nt, int32(i)); err != nil {
						c.b.log.Error("open replica", "topic", ti.Name, "partition", i, "err", err)
						continue
					}
				} else if configsChanged {
					p.applyConfigs(ti.Configs)
				}
				c.updateReplica(p, ps)
			case p != nil:
				c.dropReplica(p)
				p = nil
			}
			nt.partitions[i] = p
		}
		v.put(nt)
	}
	for id, old := range cur.byID {
		if img.TopicByID(id) != nil {
			continue
		}
		for _, p := range old.partitions {
			if p != nil {
				c.dropReplica(p)
			}
		}
		c.b.log.Info("deleted topic", "topic", old.meta.Name)
	}
	tm.view.Store(v)
	c.applied.Store(img)
}

// dropReplica stops a replica this node no longer hosts and deletes its log.
func (c *cluster) dropReplica(p *partition) {
	c.becomeNone(p)
	p.deleted()
	c.b.metrics.removePartition(p)
	c.b.store.DeleteLog(p.tp)
}
